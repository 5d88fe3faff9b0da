"""What an inference's pods say about its replicas, read as the local runner reports them.

A pod restart is not a failure: the kubelet restarts a crashed container of a Deployment's pod
in place (`restartCount` grows, `lastState.terminated` says why it ended). Ready replicas are the
pods whose `Ready` condition is true; restarts are the pods' container restart counts; the last
exit is the newest `lastState.terminated` (reason and exit code). A container waiting in
`CrashLoopBackOff` after `crash_loop_limit` restarts or more is a crash loop, which fails the
inference, as `KAFKAML_CRASH_LOOP_LIMIT` crashes in a row do on the local runner.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client import V1ContainerStateTerminated, V1Pod

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


@dataclass(frozen=True)
class ReplicaHealth:
    """An inference's replicas as its pods show them (the `on_health` report)."""

    ready: int
    restarts: int
    last_exit_reason: str = ""


@dataclass(frozen=True)
class PodHealth:
    """One pod: whether it is ready, its containers' restarts and the newest exit among them.

    `last_exit_at` (the exit's finishedAt, ISO text) orders the exits of several pods.
    """

    name: str
    ready: bool
    restarts: int
    last_exit: str = ""
    last_exit_at: str = ""
    crash_loop: str = ""


def pod_health(pod: V1Pod, crash_loop_limit: int) -> PodHealth:
    """Read `pod`'s status; `crash_loop` is the reason text when one of its containers waits
    in CrashLoopBackOff after `crash_loop_limit` restarts or more ("" otherwise)."""
    name = str(pod.metadata.name if pod.metadata else "")
    status = pod.status
    terminating = pod.metadata is not None and pod.metadata.deletion_timestamp is not None
    conditions = (status.conditions or []) if status else []
    ready = not terminating and any(c.type == "Ready" and c.status == "True" for c in conditions)
    restarts, last_exit, last_exit_at, crash_loop = 0, "", "", ""
    for container in (status.container_statuses or []) if status else []:
        restarts += container.restart_count or 0
        ended = container.last_state.terminated if container.last_state else None
        if ended is not None and _finished_at(ended) >= last_exit_at:
            last_exit, last_exit_at = describe_termination(ended), _finished_at(ended)
        waiting = container.state.waiting if container.state else None
        looping = waiting is not None and waiting.reason == CRASH_LOOP_BACK_OFF
        if looping and (container.restart_count or 0) >= crash_loop_limit and not crash_loop:
            crash_loop = (
                f"{CRASH_LOOP_BACK_OFF}: container {container.name} of pod {name} restarted "
                f"{container.restart_count} times (crash-loop limit {crash_loop_limit})"
            )
    if crash_loop and last_exit:
        crash_loop = f"{crash_loop}; its last exit: {last_exit}"
    return PodHealth(name, ready, restarts, last_exit, last_exit_at, crash_loop)


def training_pod_exit(pod: V1Pod) -> str:
    """How a training pod's container ended ("" while it runs): its current state when it
    terminated (a Job's pods never restart in place), else its last state."""
    name = str(pod.metadata.name if pod.metadata else "")
    for container in (pod.status.container_statuses or []) if pod.status else []:
        for state in (container.state, container.last_state):
            ended = state.terminated if state is not None else None
            if ended is not None:
                return f"pod {name}: {describe_termination(ended)}"
    return ""


def describe_termination(ended: V1ContainerStateTerminated) -> str:
    """`OOMKilled (exit code 137)`, with the container's message when it left one."""
    text = f"{ended.reason or 'Terminated'} (exit code {ended.exit_code})"
    return f"{text}: {ended.message}" if ended.message else text


def summarize(pods: list[PodHealth], gone_restarts: int = 0) -> ReplicaHealth:
    """The inference's health from its current pods, plus the restarts of pods already gone
    (scaled down or replaced), so the count does not fall when a pod is deleted."""
    exited = [pod for pod in pods if pod.last_exit]
    newest = max(exited, key=lambda pod: pod.last_exit_at, default=None)
    last_exit = f"pod {newest.name}: {newest.last_exit}" if newest is not None else ""
    return ReplicaHealth(
        ready=sum(1 for pod in pods if pod.ready),
        restarts=gone_restarts + sum(pod.restarts for pod in pods),
        last_exit_reason=last_exit,
    )


def _finished_at(ended: V1ContainerStateTerminated) -> str:
    finished = ended.finished_at
    return finished.isoformat() if finished is not None else ""
