"""Where a training step's time goes: reads a TensorFlow profiler trace (an XPlane file from
`benchmarks/profile_window.py`) of keras-nmt or of OpenNMT-tf training and prints the op
time per training step, part by part.

    python benchmarks/step_parts.py TRACE_DIR [TRACE_DIR ...] [--names N]

Each op's self time is its event's duration minus the events nested in it on the same
thread (a `While` op's body ops, say), summed over the executor threads: CPU time, which
with two inter-op threads can exceed the step's wall time. A step is one call of the
toolkit's training function (keras-nmt: `model.fit`'s `steps` function; OpenNMT-tf:
`_accumulate_gradients`), counted in the window. Ops are put in parts by their names (the
scopes both toolkits give them); backward ops are those under `gradient_tape/`. `--names N`
also prints each part's N costliest op names, to check the rules.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re

# (part, pattern on the op name without its `gradient_tape/` prefix), first match wins.
PARTS = [
    (
        "optimizer (Adam, clipping, counters)",
        r"Adam|adam|clip|global_norm|AssignAdd|l2_loss|"
        r"iteration|Assign(Sub)?VariableOp|apply_gradients|ReadVariableOp",
    ),  # fmt: skip
    ("encoder", r"encoder"),
    ("decoder loop (LSTM cell, attention, input feeding)", r"while"),
    (
        "generator and loss",
        r"generator|dense_2|softmax|cross_entropy|one_hot|loss|"
        r"masked_nll|log_softmax|token_sums|Sum|Mean",
    ),  # fmt: skip
    ("embeddings", r"embedding|UnsortedSegmentSum|Gather"),
]
STEP_EVENTS = (
    "EagerLocalExecute: __inference_steps",
    "EagerLocalExecute: __inference__accumulate_gradients",
)


def read_space(directory: pathlib.Path):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = sorted(directory.glob("plugins/profile/*/*.xplane.pb"))[-1:]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    return space


def self_times(line, metadata) -> collections.Counter:
    """Self time (ms) per event name on one thread: events nest on a thread by time."""
    events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
    totals: collections.Counter = collections.Counter()
    stack: list[list] = []  # [end, name, self time]
    for event in events:
        start, end = event.offset_ps, event.offset_ps + event.duration_ps
        while stack and stack[-1][0] <= start:
            _, name, own = stack.pop()
            totals[name] += own / 1e9
        if stack:
            stack[-1][2] -= event.duration_ps
        stack.append([end, metadata[event.metadata_id].name, event.duration_ps])
    for _, name, own in stack:
        totals[name] += own / 1e9
    return totals


def part_of(op: str) -> str:
    name, _, kind = op.rpartition(":")
    backward = name.startswith("gradient_tape/")
    bare = name.removeprefix("gradient_tape/")
    for part, pattern in PARTS:
        if re.search(pattern, bare) or re.search(pattern, kind):
            return f"{part}, {'backward' if backward else 'forward'}"
    return f"other, {'backward' if backward else 'forward'}"


def step_parts(directory: pathlib.Path) -> tuple[int, collections.Counter, dict]:
    space = read_space(directory)
    (host,) = [plane for plane in space.planes if plane.name == "/host:CPU"]
    steps, parts, names = 0, collections.Counter(), collections.defaultdict(collections.Counter)
    for line in host.lines:
        if line.name == "python":
            steps += sum(
                host.event_metadata[e.metadata_id].name.startswith(STEP_EVENTS) for e in line.events
            )
        if not line.name.startswith("tf_Compute"):
            continue
        for name, ms in self_times(line, host.event_metadata).items():
            if ":" not in name or "::" in name:  # the executor's own events, not an op
                parts["executor (scheduling ops)"] += ms
                continue
            part = part_of(name)
            parts[part] += ms
            names[part][re.sub(r"body/_\d+/", "body/", name)] += ms
    return steps, parts, names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="+", type=pathlib.Path)
    parser.add_argument("--names", type=int, default=0)
    args = parser.parse_args(argv)
    results = [step_parts(directory) for directory in args.traces]
    labels = sorted({part for _, parts, _ in results for part in parts})
    header = " | ".join(
        f"{d.name} ({steps} steps)" for d, (steps, _, _) in zip(args.traces, results)
    )
    print(f"| part (ms of op time per step) | {header} |")
    print("|---|" + "---|" * len(results))
    for label in labels + ["total"]:
        cells = []
        for steps, parts, _ in results:
            value = sum(parts.values()) if label == "total" else parts.get(label, 0.0)
            cells.append(f"{value / max(steps, 1):.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for directory, (steps, _, names) in zip(args.traces, results):
        for part in sorted(names) if args.names else ():
            print(f"\n{directory.name}: {part}")
            for name, ms in names[part].most_common(args.names):
                print(f"  {ms / max(steps, 1):7.2f} ms  {name[-140:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
