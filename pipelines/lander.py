"""The live lander: every topic landed into bronze as records arrive, through broker restarts.

``marketlake lander`` (what ``marketlake up`` runs) keeps one follow-mode landing per topic
(:func:`pipelines.produce.ingest_topic`, exactly once, offsets in the Delta log). A watcher
checks the broker every second: when it restarts (new address or new log) or disappears, every
landing round ends after its current batch and starts again on the new broker, where the landing
code continues on the new log (see ``pipelines/offsets.py``). Each committed batch is reported to
Dagster as a runless materialization of the bronze asset, so the automation downstream (silver,
gold, predictions) fires and the UI shows what landed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from pipelines.broker import resolve_broker
from warehouse.bronze import LandedBatch
from warehouse.errors import BrokerError, CommitConflictError, MarketlakeError
from warehouse.settings import Settings
from warehouse.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)

WATCH_S = 1.0
RETRY_S = 2.0

Reporter = Callable[[TopicSpec, LandedBatch], None]


def broker_identity(settings: Settings) -> str | None:
    """What identifies the current broker: its address and log (``None``: no broker answers)."""
    try:
        endpoint = resolve_broker(settings)
    except BrokerError:
        return None
    return f"{endpoint.bootstrap}#{endpoint.log_id}"


class _Rounds:
    """One stop event per landing round; all are set when the broker changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: set[threading.Event] = set()

    def new(self) -> threading.Event:
        event = threading.Event()
        with self.lock:
            self.events.add(event)
        return event

    def done(self, event: threading.Event) -> None:
        with self.lock:
            self.events.discard(event)

    def end_all(self) -> None:
        with self.lock:
            for event in self.events:
                event.set()


def run_lander(
    settings: Settings,
    stop: threading.Event,
    *,
    topics: Sequence[str] = tuple(TOPICS),
    report: Reporter | None = None,
) -> dict[str, int]:
    """Land ``topics`` as records arrive until ``stop``; returns rows landed per topic.

    Args:
        settings: the broker and the lake.
        stop: set it to end (each landing commits what it fetched first).
        topics: the topics to land (default: all four).
        report: called after each committed batch (e.g. :func:`dagster_reporter`).
    """
    rounds = _Rounds()
    landed = dict.fromkeys(topics, 0)
    lock = threading.Lock()
    unreported: list[tuple[TopicSpec, LandedBatch]] = []

    def deliver() -> None:
        """Report what is waiting, oldest first; keep what fails for the next try."""
        while unreported and report is not None:
            spec, batch = unreported[0]
            try:
                report(spec, batch)
            except Exception as exc:  # reporting must never stop the landing
                log.warning(
                    "could not report %s to Dagster (%s); %d batches wait, retried every %.0f s",
                    spec.table,
                    exc,
                    len(unreported),
                    WATCH_S,
                )
                return
            unreported.pop(0)

    def on_batch(spec: TopicSpec, batch: LandedBatch) -> None:
        with lock:
            landed[spec.topic] += batch.rows
            if report is not None:
                unreported.append((spec, batch))
                deliver()

    threads = [
        threading.Thread(
            target=_land_forever,
            args=(settings, TOPICS[topic], stop, rounds, on_batch),
            name=f"lander-{topic}",
            daemon=True,
        )
        for topic in topics
    ]
    for thread in threads:
        thread.start()
    identity = broker_identity(settings)
    while not stop.wait(WATCH_S):
        with lock:
            deliver()  # a report that failed (e.g. the Dagster database was locked) goes again
        now = broker_identity(settings)
        if now != identity:
            log.warning("the broker changed (%s -> %s): landing restarts on it", identity, now)
            identity = now
            rounds.end_all()
    rounds.end_all()
    for thread in threads:
        thread.join(timeout=60)
    with lock:
        deliver()
    return landed


def _land_forever(
    settings: Settings,
    spec: TopicSpec,
    stop: threading.Event,
    rounds: _Rounds,
    on_batch: Callable[[TopicSpec, LandedBatch], None],
) -> None:
    from pipelines.produce import ingest_topic

    while not stop.is_set():
        round_stop = rounds.new()
        if stop.is_set():
            break
        try:
            if broker_identity(settings) is None:
                raise BrokerError("no broker answers")
            report = ingest_topic(
                settings,
                spec.topic,
                follow=True,
                stop=round_stop,
                progress=False,
                on_batch=lambda batch: on_batch(spec, batch),
            )
            log.info("%s: landing round ended after %d rows", spec.topic, report.rows)
        except CommitConflictError as exc:
            log.warning("%s: another writer committed first (%s); retrying", spec.topic, exc)
        except BrokerError as exc:
            log.info("%s: waiting for the broker (%s)", spec.topic, exc)
        except MarketlakeError as exc:
            log.error("%s: landing failed: %s; retrying in %.0f s", spec.topic, exc, RETRY_S)
        except Exception:  # a thread that died would stop this topic for good: log and retry
            log.exception(
                "%s: landing failed unexpectedly; retrying in %.0f s", spec.topic, RETRY_S
            )
        finally:
            rounds.done(round_stop)
        stop.wait(RETRY_S if not round_stop.is_set() else 0.1)


def dagster_reporter(settings: Settings) -> Reporter:
    """A reporter that records each landed batch in the Dagster instance of ``settings``."""
    import dagster as dg

    from pipelines.landing_events import report_landed
    from pipelines.materialize import ensure_dagster_home

    ensure_dagster_home(settings)
    instance = dg.DagsterInstance.get()

    def report(spec: TopicSpec, batch: LandedBatch) -> None:
        if batch.rows or batch.rejects:
            report_landed(instance, spec, batch)

    return report
