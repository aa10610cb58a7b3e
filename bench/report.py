"""The benchmark's figures for a person: progress lines, the tables, the targets."""

from __future__ import annotations

import math
import sys
from typing import Any

from procstat import CLIENT

Phase = dict[str, Any]
MIB_LIMIT = 100


def say(message: str) -> None:
    """One line of progress on stderr, so stdout holds only the tables."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _name(phase: Phase) -> str:
    spread = "many orgs" if phase["spread"] == "many" else "hot account"
    if phase["target"] == "ceiling":
        return f"ceiling   {spread}"
    endpoint = phase["endpoint"].removeprefix("/api/")
    return f"{endpoint:<10}{spread}"


def progress(phase: Phase) -> None:
    """A line per finished phase."""
    busiest = phase["busiest"]
    say(
        f"{_name(phase)} c{phase['concurrency']}: {phase['rps']} rps, "
        f"p99 {phase['p99_ms']} ms, errors {sum(phase['errors'].values())}, "
        f"busiest {busiest['process']} {busiest['core_share']:.0%} of a core"
    )


def _find(phases: list[Phase], **match: Any) -> Phase | None:
    for phase in phases:
        if all(phase.get(key) == value for key, value in match.items()):
            return phase
    return None


def ratios(phases: list[Phase]) -> list[dict[str, Any]]:
    """Each Tollgate phase's throughput as a fraction of its ceiling's.

    The ceiling of a phase is the ledger charge at the same concurrency on the same
    spread of accounts; summarise, which charges too, is set against the many-org
    ceiling at its concurrency.
    """
    found = []
    for phase in phases:
        if phase["target"] != "tollgate":
            continue
        ceiling = _find(
            phases,
            target="ceiling",
            spread=phase["spread"],
            concurrency=phase["concurrency"],
        )
        if ceiling is None:
            continue
        found.append(
            {
                "endpoint": phase["endpoint"],
                "spread": phase["spread"],
                "concurrency": phase["concurrency"],
                "tollgate_rps": phase["rps"],
                "ceiling_rps": ceiling["rps"],
                "ratio": round(phase["rps"] / ceiling["rps"], 3)
                if ceiling["rps"]
                else None,
            }
        )
    return found


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The design targets, each with the measured value and whether it was met."""
    phases = results["phases"]
    found = []
    top = max(results["settings"]["concurrencies"])
    many = _find(phases, target="tollgate", spread="many", concurrency=top)
    many_ceiling = _find(phases, target="ceiling", spread="many", concurrency=top)
    hot = _find(phases, target="tollgate", spread="hot", concurrency=top)
    if many and many_ceiling and many_ceiling["rps"]:
        value = many["rps"] / many_ceiling["rps"]
        found.append(
            _target(f"c{top} many orgs >= 50% of the ceiling", value, value >= 0.5)
        )
    if many and hot and many["rps"]:
        value = hot["rps"] / many["rps"]
        found.append(
            _target(f"c{top} hot account >= 70% of many orgs", value, value >= 0.7)
        )
    for spread in ("many", "hot"):
        phase = _find(
            phases,
            target="tollgate",
            endpoint="/api/analyse",
            spread=spread,
            concurrency=16,
        )
        if phase:
            found.append(
                _target(
                    f"p99 < 50 ms at c16, analyse {spread}",
                    phase["p99_ms"],
                    phase["p99_ms"] < 50,
                    unit="ms",
                )
            )
    services = {k: v for k, v in results["memory"].items() if k != CLIENT}
    heaviest = max(services, key=lambda k: services[k]["peak_rss_mib"])
    peak = services[heaviest]["peak_rss_mib"]
    found.append(
        _target(
            f"every process < {MIB_LIMIT} MB RSS (peak; heaviest {heaviest})",
            peak,
            peak < MIB_LIMIT * 1_000_000 / 2**20,
            unit="MiB",
        )
    )
    return found


def _target(name: str, value: float, met: bool, unit: str = "") -> dict[str, Any]:
    shown = f"{value:.0%}" if not unit else f"{value:.1f} {unit}"
    return {"target": name, "value": round(value, 3), "shown": shown, "met": met}


def table(results: dict[str, Any]) -> None:
    """Print the throughput, memory, money and target tables."""
    machine, versions = results["machine"], results["versions"]
    settings = results["settings"]
    print(
        f"\nTollgate bench: {machine['cores']} cores ({machine['cpu_model']}), "
        f"Python {versions['python']}, Envoy {versions['envoy']}, "
        f"PostgreSQL {versions['postgres']}, {settings['event_loop']}; "
        f"{settings['seconds_per_phase']:g} s per phase after "
        f"{settings['warmup_seconds']:g} s warm-up"
    )
    print(_throughput(results))
    print(_memory(results))
    print(_money(results))
    print("\ntarget                                              measured  met")
    for target in results["targets"]:
        print(
            f"{target['target']:<52}{target['shown']:>8}  "
            f"{'yes' if target['met'] else 'NO'}"
        )


def _throughput(results: dict[str, Any]) -> str:
    ratio_of = {
        (r["endpoint"], r["spread"], r["concurrency"]): r["ratio"]
        for r in results["ratios"]
    }
    lines = [
        "",
        "phase                  conc      rps    p50    p95    p99  errors  "
        "of ceiling  CPU ms/req  lock waits  busiest process (of one core)  others",
    ]
    for phase in results["phases"]:
        ratio = ratio_of.get((phase["endpoint"], phase["spread"], phase["concurrency"]))
        errors = sum(phase["errors"].values())
        busiest = phase["busiest"]
        per_request = phase["cpu_ms_per_request"].get("server_total", math.nan)
        busy = f"{busiest['process']} {busiest['core_share']:.0%}"
        lines.append(
            f"{_name(phase):<22}{phase['concurrency']:>5}{phase['rps']:>9.1f}"
            f"{phase['p50_ms']:>7.1f}{phase['p95_ms']:>7.1f}{phase['p99_ms']:>7.1f}"
            f"{errors:>8}  {f'{ratio:.0%}' if ratio is not None else '':>10}"
            f"{per_request:>12.2f}{phase['lock_waiters']['mean']:>12.1f}  {busy:<30}"
            f"{phase['cpu']['rest_of_machine_core_share']:>6.2f}"
        )
        if phase.get("submit"):
            submit = phase["submit"]
            lines.append(
                f"{'  submit only':<36}{submit['p50_ms']:>7.1f}"
                f"{submit['p95_ms']:>7.1f}{submit['p99_ms']:>7.1f}"
            )
    lines.append(
        "latencies in ms; summarise: submit to completed job, rps = jobs completed "
        "per second.\nCPU ms/req: CPU of every serving process (not the client) per "
        "request; lock waits: mean connections waiting for a row lock;\nothers: "
        "cores busy with work that is not this benchmark's"
    )
    return "\n".join(lines)


def _memory(results: dict[str, Any]) -> str:
    lines = [
        "",
        f"worker processes that died and were replaced: {results['worker_restarts']}",
        "",
        "process (largest reading after a phase)  pid   RSS MiB  peak MiB   PSS MiB",
    ]
    for label, row in results["memory"].items():
        lines.append(
            f"{label:<34}{row['pid']:>8}{row['rss_mib']:>10.1f}"
            f"{row['peak_rss_mib']:>10.1f}{row['pss_mib']:>10.1f}"
        )
    return "\n".join(lines)


def _money(results: dict[str, Any]) -> str:
    tollgate = results["money"]["tollgate"]
    ceiling = results["money"]["ceiling"]
    reconcile = tollgate["reconcile"]
    return "\n".join(
        [
            "",
            f"money, Tollgate: {tollgate['credits_left_accounts']} credits left the "
            f"accounts, {tollgate['credits_the_clients_were_charged']} charged by "
            f"{tollgate['successful_calls']} successful calls "
            f"({tollgate['ledger_charges']} ledger charges, "
            f"{tollgate['ledger_refunds']} refunds); reconcile "
            f"{'passed' if reconcile['exit_code'] == 0 else 'FAILED'}: "
            f"{'ok' if tollgate['ok'] else 'MISMATCH'}",
            f"money, ceiling: {ceiling['credits_left_accounts']} credits left the "
            f"accounts for {ceiling['committed_charges']} committed charges; "
            f"reconciled {'yes' if ceiling['reconciled'] else 'NO'}: "
            f"{'ok' if ceiling['ok'] else 'MISMATCH'}",
        ]
    )


def markdown(results: dict[str, Any]) -> str:
    """The throughput, memory and money figures as Markdown tables, for a README."""
    ratio_of = {
        (r["endpoint"], r["spread"], r["concurrency"]): r["ratio"]
        for r in results["ratios"]
    }
    lines = [
        "| phase | conc | rps | p50 ms | p95 ms | p99 ms | errors | of ceiling "
        "| CPU ms/req | lock waits | busiest process (of one core) | others |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
        "| ---: |",
    ]
    for phase in results["phases"]:
        ratio = ratio_of.get((phase["endpoint"], phase["spread"], phase["concurrency"]))
        busiest = phase["busiest"]
        lines.append(
            f"| {' '.join(_name(phase).split())} | {phase['concurrency']} "
            f"| {phase['rps']:.0f} | {phase['p50_ms']:.1f} | {phase['p95_ms']:.1f} "
            f"| {phase['p99_ms']:.1f} | {sum(phase['errors'].values())} "
            f"| {f'{ratio:.0%}' if ratio is not None else ''} "
            f"| {phase['cpu_ms_per_request'].get('server_total', math.nan):.2f} "
            f"| {phase['lock_waiters']['mean']:.1f} "
            f"| {busiest['process']} {busiest['core_share']:.0%} "
            f"| {phase['cpu']['rest_of_machine_core_share']:.2f} |"
        )
        if phase.get("submit"):
            submit = phase["submit"]
            lines.append(
                f"| (summarise submit only) | | | {submit['p50_ms']:.1f} "
                f"| {submit['p95_ms']:.1f} | {submit['p99_ms']:.1f} "
                "| | | | | | |"
            )
    lines += [
        "",
        "| process | RSS MiB | peak RSS MiB | PSS MiB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, row in results["memory"].items():
        lines.append(
            f"| {label} | {row['rss_mib']:.1f} | {row['peak_rss_mib']:.1f} "
            f"| {row['pss_mib']:.1f} |"
        )
    return "\n".join(lines)
