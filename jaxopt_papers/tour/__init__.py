"""The tour: ``python -m jaxopt_papers`` (or the console script ``jaxopt-papers-tour``).

Runs on small bundled or generated data in about a minute on 2 CPU cores, prints tables and
writes plots to ``tour_output/`` (``--out DIR``). It is a list of sections, :data:`SECTIONS`,
one module of this package each with a function ``section(ctx: Tour) -> None``. Sections use
the library's public API only; those that need float64 enable it locally
(``with jax.enable_x64(True):``), so the caller's ``jax_enable_x64`` is left as it was.
:mod:`jaxopt_papers.tour.workloads` holds the small training workloads shared with the
benchmarks.

Sections so far:

- ``first-order``: trains the digits MLP (:func:`jaxopt_papers.tour.workloads.digits_mlp`)
  with our first-order optimizers and optax's, one jitted ``lax.scan`` per optimizer, and reports
  final training loss, test accuracy, steps to the 97% target, steps/s and compile time apart;
  writes ``first_order.png``.
- ``hypergradient``: a lasso on scikit-learn's diabetes data solved by
  :class:`~jaxopt_papers.proximal.ProximalGradient` (checked against scikit-learn); the
  hypergradient of the validation loss by implicit differentiation, by unrolling and by central
  differences; then alpha tuned by gradient descent on log(alpha) next to a vmapped grid;
  writes ``hypergradient.png``.
- ``optimal-transport``: the SNS paper's random linear assignment problem (ε = 1/1200) solved by
  Sinkhorn–Newton–Sparse and by log-domain Sinkhorn to the same L1 marginal error; iterations,
  time and compile time apart; writes ``optimal_transport.png`` (error against iterations).
- ``krylov-recycling``: a Darcy-flow sequence solved by SKR (sorted, recycled GCRO-DR), our
  GMRES(40) and scipy's, checked against ``spsolve``; then SOR's ω chosen online by Tsallis-INF and
  ChebCB on the Learning to Relax stream; writes ``krylov_recycling.png``.
- ``bilevel``: data hyper-cleaning on digits with half the training labels corrupted, by the
  bilevel solvers of :mod:`jaxopt_papers.bilevel`, against training on all labels and on the
  clean subset; test accuracy, time, oracle calls; writes ``bilevel.png``.
- ``schedules``: on the digits MLP, Adam-HD (:func:`jaxopt_papers.schedules.adam_hd`) started
  from a learning rate 10x too small against Adam at that learning rate and at a good one, then
  the schedule refined from a linear-decay run's gradient norms against linear decay; writes
  ``schedules.png``.
- ``zeroth-order``: the digits MLP, pretrained by a few Adam steps, fine-tuned by MeZO
  (:func:`jaxopt_papers.zeroth_order.mezo_step`: two loss evaluations per step, no gradient)
  and by backprop SGD; test accuracy, steps/s and the compiled peak memory of one step beside the
  forward pass's; writes ``zeroth_order.png``.
- ``second-order``: the digits autoencoder (:func:`jaxopt_papers.tour.workloads.digits_autoencoder`)
  trained by ``optax.adam``, :func:`jaxopt_papers.curvature.mkor` (its statistics captured in the
  gradient pass) and :func:`jaxopt_papers.curvature.mfac`; steps to the target test loss, time
  per step, compile time apart; writes ``second_order.png``.

Needs the ``tour`` extra (scikit-learn, matplotlib, tqdm): ``pip install "jaxopt-papers[tour]"``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Callable, Sequence

import jax

from jaxopt_papers.tour import (
    bilevel,
    first_order,
    hypergradient,
    krylov_recycling,
    optimal_transport,
    schedules,
    second_order,
    zeroth_order,
)
from jaxopt_papers.tour._common import Tour

__all__ = ["SECTIONS", "Tour", "main"]

SECTIONS: list[tuple[str, Callable[[Tour], None]]] = [
    ("first-order", first_order.section),
    ("hypergradient", hypergradient.section),
    ("optimal-transport", optimal_transport.section),
    ("krylov-recycling", krylov_recycling.section),
    ("bilevel", bilevel.section),
    ("schedules", schedules.section),
    ("zeroth-order", zeroth_order.section),
    ("second-order", second_order.section),
]
"""The tour's sections in order: ``(name, function)``."""


def _check_extras() -> None:
    missing = []
    for mod in ("sklearn", "matplotlib", "tqdm"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        sys.exit(
            f"The tour needs {', '.join(missing)}, from the tour extra: "
            'pip install "jaxopt-papers[tour]"'
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour with command-line arguments ``argv`` (default ``sys.argv[1:]``)."""
    names = [name for name, _ in SECTIONS]
    ap = argparse.ArgumentParser(
        prog="python -m jaxopt_papers", description="A tour of jaxopt_papers on small data."
    )
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("tour_output"),
                    help="directory for the plots (default: ./tour_output)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="a few optimizers, few steps (tests)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run")
    ap.add_argument("--sections", nargs="*", choices=names, default=names, metavar="SECTION",
                    help=f"sections to run (default: all of {', '.join(names)})")  # fmt: skip
    args = ap.parse_args(argv)
    _check_extras()
    if args.steps is not None and (args.steps <= 0 or args.steps % 10):
        ap.error("--steps must be a positive multiple of 10")

    import jaxopt_papers

    ctx = Tour(out=args.out, quick=args.quick, steps=args.steps)
    ctx.out.mkdir(parents=True, exist_ok=True)
    dev = jax.devices()[0]
    print(
        f"jaxopt_papers {jaxopt_papers.__version__} tour — jax {jax.__version__} on "
        f"{jax.default_backend()} ({getattr(dev, 'device_kind', dev)})"
    )
    start = time.perf_counter()
    for name, section in SECTIONS:
        if name in args.sections:
            print(f"\n== {name} ==")
            section(ctx)
    print(f"\nwrote {', '.join(str(p) for p in ctx.written)}")
    print(f"tour done in {time.perf_counter() - start:.1f} s")
    return 0
