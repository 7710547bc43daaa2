"""Ready bilevel problems: generated ones with closed-form solutions and scikit-learn data sets.

Each function returns a :class:`ReadyProblem`: the problem, a starting point ``(x0, y0)``, the
data of both levels, the solution where one is known in closed form, and ``extras`` (test data
and an evaluation function for the learning problems). Every algorithm of
:mod:`jaxopt_papers.bilevel` runs on them unchanged:

    rp = bilevel.problems.quadratic()
    sol = bilevel.ImplicitBilevel(rp.problem).run(rp.x0, rp.y0, rp.upper_data, rp.lower_data)

The scikit-learn problems (``logistic_l2``, ``hyper_cleaning``, ``multi_task_logistic``) use its
bundled data sets (no download) and need scikit-learn (the ``tour`` extra). Arrays are float64
when ``jax_enable_x64`` is on, else float32.

Differences from the reference code: these are the library's own instances of the papers'
experiments, sized to run on a CPU.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.bilevel.problem import BilevelParams, BilevelProblem, MultiBlockProblem

__all__ = [
    "ReadyProblem",
    "accuracy",
    "hyper_cleaning",
    "linear_svm",
    "logistic_l2",
    "lvhba_toy",
    "multi_block_quadratic",
    "multi_task_logistic",
    "quadratic",
]


class ReadyProblem(NamedTuple):
    """A bilevel problem with its data, a starting point and (where known) its solution.

    Returned by the ready-problem functions (:func:`quadratic`, :func:`hyper_cleaning`, ...);
    each argument is the attribute of the same name.

    Args:
      problem: the :class:`~jaxopt_papers.bilevel.BilevelProblem` or
        :class:`~jaxopt_papers.bilevel.MultiBlockProblem`.
      x0: the starting upper-level variable.
      y0: the starting lower-level variable.
      upper_data: the upper level's data.
      lower_data: the lower level's data.
      solution: the exact :class:`~jaxopt_papers.bilevel.BilevelParams`, or ``None``.
      extras: a dict of problem-specific items (test data, which labels were corrupted ...).

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.quadratic(dim_x=2, dim_y=3)
      >>> rp.x0.shape, rp.solution.y.shape, rp.extras is None
      ((2,), (3,), True)
    """

    problem: Any
    x0: Any
    y0: Any
    upper_data: Any
    lower_data: Any
    solution: BilevelParams | None = None
    extras: dict | None = None


def _float() -> Any:
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _sklearn(name: str) -> Any:
    try:
        from sklearn import datasets, model_selection
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"bilevel.problems.{name} uses scikit-learn's bundled data, and scikit-learn is not "
            'a runtime dependency of jaxopt_papers. Install it: pip install "jaxopt-papers[tour]"'
        ) from err
    return datasets, model_selection


# --- quadratic problems with closed forms -------------------------------------------------------


def _quadratic_upper(x: Any, y: Any, data: Any) -> jax.Array:
    t, rho = data
    return 0.5 * jnp.sum((y - t) ** 2) + 0.5 * rho * jnp.sum(x**2)


def _quadratic_lower(x: Any, y: Any, data: Any) -> jax.Array:
    H, B, c = data
    return 0.5 * y @ (H @ y) - y @ (B @ x + c)


def quadratic(
    dim_x: int = 5, dim_y: int = 10, *, seed: int = 0, mu: float = 1.0, rho: float = 0.1,
    condition: float = 10.0,
) -> ReadyProblem:  # fmt: skip
    """A quadratic bilevel problem with a closed-form solution, in any dimension.

    Lower level ``g(x, y) = ½yᵀHy − yᵀ(Bx + c)`` (``H`` symmetric positive definite with
    eigenvalues in ``[mu, condition·mu]``), so ``y*(x) = H⁻¹(Bx + c)``; upper level
    ``f(x, y) = ½‖y − t‖² + ½ρ‖x‖²``. With ``M = H⁻¹B`` the solution is
    ``x* = (MᵀM + ρI)⁻¹ Mᵀ(t − H⁻¹c)``. Data: ``upper_data = (t, ρ)``,
    ``lower_data = (H, B, c)``; start at zero.

    Args:
      dim_x: dimension of ``x``.
      dim_y: dimension of ``y``.
      seed: NumPy seed of the random data.
      mu: the smallest eigenvalue of ``H`` (the lower level's strong convexity).
      rho: the upper level's ridge on ``x``.
      condition: the condition number of ``H``.

    Returns:
      The :class:`ReadyProblem`, with ``solution``.

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.quadratic(dim_x=3, dim_y=4)
      >>> rp.solution.x.shape, rp.solution.y.shape
      ((3,), (4,))
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim_y, dim_y)))
    H = q @ np.diag(np.linspace(mu, condition * mu, dim_y)) @ q.T
    B = rng.normal(size=(dim_y, dim_x)) / np.sqrt(dim_x)
    c = rng.normal(size=dim_y)
    t = rng.normal(size=dim_y)
    M = np.linalg.solve(H, B)
    x_star = np.linalg.solve(M.T @ M + rho * np.eye(dim_x), M.T @ (t - np.linalg.solve(H, c)))
    y_star = np.linalg.solve(H, B @ x_star + c)
    dt = _float()
    a = lambda v: jnp.asarray(v, dt)
    return ReadyProblem(
        BilevelProblem(_quadratic_upper, _quadratic_lower),
        jnp.zeros(dim_x, dt), jnp.zeros(dim_y, dt), (a(t), a(rho)), (a(H), a(B), a(c)),
        BilevelParams(a(x_star), a(y_star)),
    )  # fmt: skip


def _mb_upper(x: Any, y: Any, t: Any) -> jax.Array:
    return 0.5 * jnp.sum((y - t) ** 2)


def _mb_lower(x: Any, y: Any, data: Any) -> jax.Array:
    A, mu = data
    return 0.5 * jnp.sum((y - A @ x) ** 2) + 0.5 * mu * jnp.sum(y**2)


def multi_block_quadratic(
    num_blocks: int = 8, dim_x: int = 4, dim_y: int = 6, *, seed: int = 0, mu: float = 0.5
) -> ReadyProblem:
    """Quadratic blocks with a closed form (BSVRB's oracle, spec 8.4).

    Block ``i``: ``gᵢ(x, y) = ½‖y − Aᵢx‖² + (μ/2)‖y‖²`` and ``fᵢ(x, y) = ½‖y − tᵢ‖²``, so
    ``yᵢ*(x) = Aᵢx/(1 + μ)`` and ``x* = (Σ AᵢᵀAᵢ)⁻¹ (1 + μ) Σ Aᵢᵀtᵢ``. Data:
    ``upper_data = t`` of shape ``(m, dim_y)``, ``lower_data = (A, μ)`` with ``A`` of shape
    ``(m, dim_y, dim_x)`` and ``μ`` of shape ``(m,)``; ``y0`` of shape ``(m, dim_y)``.

    Args:
      num_blocks: ``m``.
      dim_x: dimension of ``x``.
      dim_y: dimension of each ``yᵢ``.
      seed: NumPy seed.
      mu: the lower levels' ridge.

    Returns:
      The :class:`ReadyProblem` (a :class:`~jaxopt_papers.bilevel.MultiBlockProblem`), with
      ``solution``.

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.multi_block_quadratic(num_blocks=3, dim_x=2, dim_y=4)
      >>> rp.y0.shape, rp.solution.y.shape
      ((3, 4), (3, 4))
    """
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(num_blocks, dim_y, dim_x)) / np.sqrt(dim_x)
    t = rng.normal(size=(num_blocks, dim_y))
    gram = np.einsum("iab,iac->bc", A, A)
    x_star = (1 + mu) * np.linalg.solve(gram, np.einsum("iab,ia->b", A, t))
    y_star = np.einsum("iab,b->ia", A, x_star) / (1 + mu)
    dt = _float()
    a = lambda v: jnp.asarray(v, dt)
    return ReadyProblem(
        MultiBlockProblem(_mb_upper, _mb_lower),
        jnp.zeros(dim_x, dt), jnp.zeros((num_blocks, dim_y), dt), a(t),
        (a(A), jnp.full((num_blocks,), mu, dt)), BilevelParams(a(x_star), a(y_star)),
    )  # fmt: skip


# --- learning problems on scikit-learn's bundled data ---------------------------------------------


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(v - mean) / std for v in (train, *others)]


def _with_bias(X: np.ndarray) -> np.ndarray:
    return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)


def _logistic_loss(w: jax.Array, X: jax.Array, s: jax.Array) -> jax.Array:
    """Per-sample ``log(1 + exp(−s·Xw))`` for labels ``s ∈ {−1, 1}``."""
    return jnp.logaddexp(0.0, -s * (X @ w))


def _l2_upper(x: Any, w: Any, data: Any) -> jax.Array:
    X, s = data
    return jnp.mean(_logistic_loss(w, X, s))


def _l2_lower(x: Any, w: Any, data: Any) -> jax.Array:
    X, s = data
    # exp(x) is the ridge strength (per feature or one for all); the bias is not penalised.
    return jnp.mean(_logistic_loss(w, X, s)) + 0.5 * jnp.sum(jnp.exp(x) * w[:-1] ** 2)


def accuracy(y: Any, X: jax.Array, labels: jax.Array) -> jax.Array:
    """Test accuracy of the linear model ``y`` (weights with the bias last) on ``(X, labels)``.

    ``labels`` in ``{−1, 1}`` for a binary model (``y`` a vector), class indices for a softmax
    model (``y`` a matrix with one column per class).

    Args:
      y: the model's weights, the bias as the last row.
      X: features without the bias column.
      labels: the true labels.

    Returns:
      The fraction of correct predictions.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxopt_papers import bilevel
      >>> w = jnp.array([1.0, 0.0])                  # predicts sign(x)
      >>> float(bilevel.problems.accuracy(w, jnp.array([[2.0], [-1.0]]), jnp.array([1, 1])))
      0.5
    """
    Xb = jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)
    scores = Xb @ y
    if scores.ndim == 1:
        return jnp.mean(jnp.where(scores >= 0, 1, -1) == labels)
    return jnp.mean(jnp.argmax(scores, axis=1) == labels)


def logistic_l2(*, per_feature: bool = False, seed: int = 0) -> ReadyProblem:
    """Ridge-strength selection for logistic regression on ``load_breast_cancer``.

    569 samples, 30 standardised features, split 300 / 135 / 134 (train / validation / test,
    stratified, ``seed``). Lower level: the mean logistic loss on the training set plus
    ``½ Σⱼ exp(xⱼ) wⱼ²`` (the bias not penalised); upper level: the mean logistic loss on the
    validation set. ``x`` is the log ridge strength: one scalar, or one per feature
    (``per_feature=True``, 30 hyperparameters). ``y`` = the 31 weights (bias last).
    Start: ``x0 = log(1)`` … ``0``, ``y0 = 0``. ``extras``: ``X_test``, ``labels_test``
    (in ``{−1, 1}``).

    Args:
      per_feature: one ridge strength per feature instead of one in all.
      seed: the split's random state.

    Returns:
      The :class:`ReadyProblem` (no closed-form solution).

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.logistic_l2(per_feature=True)
      >>> rp.x0.shape, rp.y0.shape, rp.lower_data[0].shape
      ((30,), (31,), (300, 31))
    """
    datasets, ms = _sklearn("logistic_l2")
    X, t = datasets.load_breast_cancer(return_X_y=True)
    s = np.where(t == 1, 1.0, -1.0)
    X_tr, X_rest, s_tr, s_rest = ms.train_test_split(
        X, s, train_size=300, random_state=seed, stratify=s
    )
    X_va, X_te, s_va, s_te = ms.train_test_split(
        X_rest, s_rest, train_size=135, random_state=seed, stratify=s_rest
    )
    X_tr, X_va, X_te = _standardise(X_tr, X_va, X_te)
    dt = _float()
    a = lambda v: jnp.asarray(v, dt)
    x0 = jnp.zeros(X.shape[1] if per_feature else (), dt)
    return ReadyProblem(
        BilevelProblem(_l2_upper, _l2_lower), x0, jnp.zeros(X.shape[1] + 1, dt),
        (a(_with_bias(X_va)), a(s_va)), (a(_with_bias(X_tr)), a(s_tr)), None,
        {"X_test": a(X_te), "labels_test": jnp.asarray(s_te.astype(np.int32))},
    )  # fmt: skip


def _softmax_ce(W: jax.Array, X: jax.Array, labels: jax.Array) -> jax.Array:
    logits = X @ W
    return (
        jax.nn.logsumexp(logits, axis=1)
        - jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    )


def _cleaning_upper(x: Any, W: Any, data: Any) -> jax.Array:
    X, labels = data
    return jnp.mean(_softmax_ce(W, X, labels))


def _cleaning_lower(x: Any, W: Any, data: Any) -> jax.Array:
    X, labels, index, reg = data
    weights = jax.nn.sigmoid(x[index])
    # the bias row too: softmax is invariant to a shift of all classes, so an unpenalised bias
    # row would leave the lower level singular along that shift
    return jnp.mean(weights * _softmax_ce(W, X, labels)) + 0.5 * reg * jnp.sum(W**2)


def hyper_cleaning(
    corruption: float = 0.5, *, num_train: int = 600, num_val: int = 300, reg: float = 1e-3,
    seed: int = 0,
) -> ReadyProblem:  # fmt: skip
    """Data hyper-cleaning on scikit-learn's digits: learn which training labels to trust.

    The 1797 standardised 8×8 digits are split ``num_train`` / ``num_val`` / rest (test),
    stratified. A fraction ``corruption`` of the training labels is replaced by a different,
    uniformly drawn class. Lower level: a linear softmax classifier ``W`` (65 × 10, bias last)
    trained on the per-sample weighted cross-entropy ``(1/n) Σᵢ σ(xᵢ) ℓᵢ(W) + ½·reg·‖W‖²``;
    upper level: the cross-entropy on the clean validation set. ``x ∈ ℝⁿ`` are the
    per-sample weight logits (start 0: every weight ½), as in Franceschi et al. (2017) and the
    BO-REP and LV-HBA experiments.

    The lower data are ``(X, labels, index, reg)`` with ``index = arange(n)``, so that a
    mini-batch of rows keeps each sample's weight. ``extras``: ``X_test``, ``labels_test``,
    ``corrupted`` (a boolean mask over the training samples), ``clean_labels``.

    Args:
      corruption: the fraction of training labels replaced, in ``[0, 1)``.
      num_train: training samples (the dimension of ``x``).
      num_val: validation samples.
      reg: the lower level's ridge (makes it strongly convex).
      seed: the split's and the corruption's random state.

    Returns:
      The :class:`ReadyProblem` (no closed-form solution).

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.hyper_cleaning(0.5, num_train=200, num_val=100)
      >>> rp.x0.shape, rp.y0.shape, round(float(rp.extras["corrupted"].mean()), 2)
      ((200,), (65, 10), 0.5)
    """
    if not 0.0 <= corruption < 1.0:
        raise ValueError(f"hyper_cleaning: `corruption` must be in [0, 1), got {corruption!r}.")
    datasets, ms = _sklearn("hyper_cleaning")
    X, t = datasets.load_digits(return_X_y=True)
    X_tr, X_rest, t_tr, t_rest = ms.train_test_split(
        X, t, train_size=num_train, random_state=seed, stratify=t
    )
    X_va, X_te, t_va, t_te = ms.train_test_split(
        X_rest, t_rest, train_size=num_val, random_state=seed, stratify=t_rest
    )
    X_tr, X_va, X_te = _standardise(X_tr, X_va, X_te)
    rng = np.random.default_rng(seed)
    corrupted = np.zeros(num_train, bool)
    corrupted[rng.choice(num_train, round(corruption * num_train), replace=False)] = True
    noisy = t_tr.copy()
    shift = rng.integers(1, 10, size=num_train)  # a different class, uniformly
    noisy[corrupted] = (t_tr[corrupted] + shift[corrupted]) % 10
    dt = _float()
    a = lambda v: jnp.asarray(v, dt)
    i32 = lambda v: jnp.asarray(v, jnp.int32)
    lower = (a(_with_bias(X_tr)), i32(noisy), i32(np.arange(num_train)), a(reg))
    return ReadyProblem(
        BilevelProblem(_cleaning_upper, _cleaning_lower), jnp.zeros(num_train, dt),
        jnp.zeros((X.shape[1] + 1, 10), dt), (a(_with_bias(X_va)), i32(t_va)), lower, None,
        {"X_test": a(X_te), "labels_test": i32(t_te), "corrupted": jnp.asarray(corrupted),
         "clean_labels": i32(t_tr)},
    )  # fmt: skip


def _mt_upper(x: Any, w: Any, data: Any) -> jax.Array:
    X, s, tau = data
    return jnp.mean(jnp.logaddexp(0.0, -s * (X @ w) / tau))


def _mt_lower(x: Any, w: Any, data: Any) -> jax.Array:
    X, s, index, tau, lam = data
    weights = jax.nn.sigmoid(x[index])
    loss = jnp.logaddexp(0.0, -s * (X @ w) / tau)
    return jnp.mean(weights * loss) + 0.5 * lam * jnp.sum(w**2)


def multi_task_logistic(
    num_blocks: int = 10, *, num_train: int = 300, num_val: int = 135, lam: float = 1e-2,
    seed: int = 0,
) -> ReadyProblem:  # fmt: skip
    """BSVRB's hyperparameter problem (spec 8.3): ``m`` logistic tasks with their own temperatures.

    On ``load_breast_cancer`` (standardised, split ``num_train`` / ``num_val`` / test): task
    ``i`` trains ``wᵢ`` on the loss ``(1/n) Σⱼ σ(xⱼ) log(1 + exp(−sⱼ·Xⱼwᵢ/τᵢ)) + ½λ‖wᵢ‖²``
    with per-sample weight logits ``x ∈ ℝⁿ`` shared by the tasks and temperatures ``τᵢ``
    spread over ``[0.5, 2]``; the upper level averages the tasks' validation losses. The data
    carry the task axis first and the sample axis next: ``lower_data = (X, s, index, τ, λ)``,
    ``upper_data = (X_val, s_val, τ)``. ``extras``: ``X_test``, ``labels_test``.

    Args:
      num_blocks: the number of tasks ``m``.
      num_train: training samples (the dimension of ``x``).
      num_val: validation samples.
      lam: the lower levels' ridge (their strong convexity).
      seed: the split's random state.

    Returns:
      The :class:`ReadyProblem` (a :class:`~jaxopt_papers.bilevel.MultiBlockProblem`).

    Example:
      >>> from jaxopt_papers import bilevel
      >>> rp = bilevel.problems.multi_task_logistic(num_blocks=4)
      >>> rp.y0.shape, rp.lower_data[0].shape
      ((4, 31), (4, 300, 31))
    """
    datasets, ms = _sklearn("multi_task_logistic")
    X, t = datasets.load_breast_cancer(return_X_y=True)
    s = np.where(t == 1, 1.0, -1.0)
    X_tr, X_rest, s_tr, s_rest = ms.train_test_split(
        X, s, train_size=num_train, random_state=seed, stratify=s
    )
    X_va, X_te, s_va, s_te = ms.train_test_split(
        X_rest, s_rest, train_size=num_val, random_state=seed, stratify=s_rest
    )
    X_tr, X_va, X_te = _standardise(X_tr, X_va, X_te)
    dt = _float()
    m = num_blocks
    rep = lambda v: jnp.broadcast_to(jnp.asarray(v, v.dtype if v.dtype.kind == "i" else dt),
                                     (m, *np.shape(v)))  # fmt: skip
    tau = jnp.asarray(np.geomspace(0.5, 2.0, m), dt)
    lower = (rep(_with_bias(X_tr)), rep(s_tr), rep(np.arange(num_train, dtype=np.int32)), tau,
             jnp.full((m,), lam, dt))  # fmt: skip
    upper = (rep(_with_bias(X_va)), rep(s_va), tau)
    return ReadyProblem(
        MultiBlockProblem(_mt_upper, _mt_lower), jnp.zeros(num_train, dt),
        jnp.zeros((m, X.shape[1] + 1), dt), upper, lower, None,
        {"X_test": jnp.asarray(X_te, dt), "labels_test": jnp.asarray(s_te.astype(np.int32))},
    )  # fmt: skip


# Defined in their own module (which imports ReadyProblem from here), so imported last.
from jaxopt_papers.bilevel._lvhba_problems import linear_svm, lvhba_toy  # noqa: E402
