# syntax=docker/dockerfile:1
# The development identity provider (oidc-provider-mock from PyPI) for Compose only;
# production logs in with Google. It accepts any client and secret, and takes its
# issuer from each request's Host header (see docker-compose.yml for what follows).
#   docker build -f deploy/docker/oidc-provider-mock.Dockerfile -t tollgate/oidc:dev .
FROM python:3.11-slim AS build
COPY requirements.txt /src/requirements.txt
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir \
      $(grep -E '^oidc-provider-mock[<>=~]' /src/requirements.txt)

FROM python:3.11-slim
RUN groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin tollgate
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9400
CMD ["oidc-provider-mock", "--host", "0.0.0.0", "--port", "9400"]
