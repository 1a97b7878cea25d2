"""Profiles a window of another Python program's run with TensorFlow's profiler.

    python benchmarks/profile_window.py --after 60 --seconds 10 --logdir DIR -- \
        benchmarks/bench.py --part train --steps 400
    python benchmarks/profile_window.py ... --module opennmt.bin.main -- --model ... train

Runs the program (a script path, or `--module`) in this process, with a thread that starts
`tf.profiler.experimental` `--after` seconds in, when training has warmed up, and stops it
`--seconds` later; the trace (an XPlane file) goes to `--logdir`. It needs only TensorFlow,
so it runs in any toolkit's environment: `benchmarks/step_parts.py` reads the trace.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--module", help="run this module instead of a script")
    parser.add_argument("program", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    program = args.program[1:] if args.program[:1] == ["--"] else args.program

    def profile() -> None:
        import tensorflow as tf

        time.sleep(args.after)
        tf.profiler.experimental.start(args.logdir)
        time.sleep(args.seconds)
        tf.profiler.experimental.stop()
        print(f"profile_window: trace written to {args.logdir}", file=sys.stderr)

    threading.Thread(target=profile, daemon=True).start()
    if args.module:
        sys.argv = [args.module, *program]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = program
        runpy.run_path(program[0], run_name="__main__")


if __name__ == "__main__":
    main()
