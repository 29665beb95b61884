"""The per-series router: which model serves each series (pure, no Prefect).

The registered model is one forecaster that routes per series among the LSTM, the
classical candidates (AutoETS, AutoTheta, seasonal naive, naive;
``seriesflow/model/classical.py``) and their combination (the mean of the LSTM's, AutoETS'
and AutoTheta's forecasts). Each series gets ``register.default_model`` unless another
candidate's error on that series' *validation* windows is below ``register.switch_below``
times the default's. Test windows never take part in the choice: they score it.

Why not simply the best candidate on validation: on M3 that per-series choice measured
worse on the test than every candidate it chose from (one validation window per series
picks noise), while the combination with rare switches measured best
(``benchmarks/competitions.py``, docs/benchmarks.md). ``default_model: lstm`` with
``switch_below: 1`` is the plain rule: the LSTM wherever it beats the best classical
candidate, else that candidate. ``register.models: lstm_only`` keeps the pure LSTM.

The errors compared are each candidate's MAE on the series' validation windows (all
steps of the horizon), divided by the series' in-sample seasonal-naive MAE: a MASE per
series, so the choice is the MAE choice and the stored errors are comparable across
series. Saved as ``router.json`` beside the model, and inside the registered model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from seriesflow.data.schema import COMBINATION, ETS, LSTM, ROUTED, THETA
from seriesflow.model.classical import CLASSICAL, ClassicalFit
from seriesflow.workspace.files import read_json

ROUTER_FILE = "router.json"
LSTM_ONLY, ROUTED_MODELS = "lstm_only", "routed"


@dataclass(frozen=True)
class Router:
    """Each series' model, and the validation errors it was chosen on."""

    choice: dict[str, str]  # series -> lstm | combination | ets | theta | seasonal_naive | naive
    val_mase: dict[str, dict[str, float]] = field(default_factory=dict)  # series -> model -> MASE
    candidates: tuple[str, ...] = (LSTM, *CLASSICAL)
    seasons: dict[str, int] = field(default_factory=dict)  # series -> season length
    default: str = LSTM  # what a series gets unless another candidate won clearly
    # series -> model -> its statsforecast fit (ets, theta: the parameters fit on the training
    # part), for the series a classical model or the combination serves: forecasts run them
    # forward over the latest history instead of refitting
    fits: dict[str, dict[str, ClassicalFit]] = field(default_factory=dict)

    def model_of(self, series_id: str) -> str:
        """The series' model; a series the router never saw gets the default."""
        return self.choice.get(str(series_id), self.default)

    @property
    def lstm_share(self) -> float:
        """Share of series whose forecast comes from the LSTM, alone or in the combination
        (1.0 for an LSTM-only model)."""
        if not self.choice:
            return math.nan
        uses = sum(model in (LSTM, COMBINATION) for model in self.choice.values())
        return uses / len(self.choice)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for model in self.choice.values():
            found[model] = found.get(model, 0) + 1
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

    def describe(self) -> str:
        total = len(self.choice)
        parts = [f"{model} {n}" for model, n in self.counts().items()]
        return f"{total} series: " + ", ".join(parts) + f" (lstm_share {self.lstm_share:.0%})"

    def to_json(self) -> dict[str, Any]:
        return {
            "candidates": list(self.candidates),
            "default": self.default,
            "lstm_share": self.lstm_share,
            "series": {
                sid: {
                    "model": self.choice[sid],
                    "season": self.seasons.get(sid, 1),
                    "val_mase": self.val_mase.get(sid, {}),
                    **(
                        {"fits": {k: f.to_json() for k, f in self.fits[sid].items()}}
                        if self.fits.get(sid)
                        else {}
                    ),
                }
                for sid in sorted(self.choice)
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Router:
        series = data.get("series", {})
        return cls(
            choice={sid: item["model"] for sid, item in series.items()},
            val_mase={sid: dict(item.get("val_mase", {})) for sid, item in series.items()},
            candidates=tuple(data.get("candidates", (LSTM, *CLASSICAL))),
            seasons={sid: int(item.get("season", 1)) for sid, item in series.items()},
            default=data.get("default", LSTM),
            fits={
                sid: {k: ClassicalFit.from_json(f) for k, f in item["fits"].items()}
                for sid, item in series.items()
                if item.get("fits")
            },
        )

    def fit_of(self, series_id: str, name: str) -> ClassicalFit | None:
        """The kept fit of model ``name`` for a series (None: refit to forecast)."""
        return self.fits.get(str(series_id), {}).get(name)

    def with_fits(self, fits: dict[str, dict[str, ClassicalFit]]) -> Router:
        """The router keeping ``fits`` for the series a fitted model serves (alone, or in
        the combination), and for no other series."""
        kept = {}
        for sid, models in fits.items():
            served = self.model_of(sid)
            names = (ETS, THETA) if served == COMBINATION else (served,)
            mine = {name: models[name] for name in names if name in models}
            if mine:
                kept[str(sid)] = mine
        return replace(self, fits=kept)

    @classmethod
    def load(cls, path: str | Path) -> Router:
        return cls.from_json(read_json(path))

    @classmethod
    def lstm_only(cls, series: list[str], seasons: dict[str, int] | None = None) -> Router:
        return cls({str(s): LSTM for s in series}, {}, (LSTM,), dict(seasons or {}), LSTM)


def share_note(share: float) -> str:
    """What the gate's reason says about the router: how many series the LSTM serves."""
    if share != share:  # NaN: no series
        return "no series routed"
    if share == 0:
        return (
            "the LSTM lost on every series' validation windows: classical candidates serve "
            "them all (lstm_share 0%)"
        )
    return f"the LSTM serves {share:.0%} of series, alone or in the combination (lstm_share)"


def validation_mase(
    series_ids: np.ndarray,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    scale: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Per series and candidate: MAE over its windows and steps / the series' MASE scale.

    ``actual`` and each forecast are [windows, horizon] in original units; a candidate
    with no finite forecast for a series gets inf (it cannot be chosen there).
    """
    errors: dict[str, dict[str, float]] = {}
    series_ids = np.asarray(series_ids).astype(str)
    for sid in np.unique(series_ids):
        mask = series_ids == sid
        truth = actual[mask]
        known = np.isfinite(truth)
        denominator = scale.get(sid, math.nan)
        if not math.isfinite(denominator) or denominator <= 0:
            denominator = 1.0  # a flat training part: plain MAE still ranks the candidates
        row = {}
        for name, predicted in forecasts.items():
            error = np.abs(predicted[mask] - truth)[known]
            row[name] = (
                float(error.mean() / denominator)
                if len(error) and np.isfinite(error).all()
                else math.inf
            )
        errors[str(sid)] = row
    return errors


def choose(
    val_mase: dict[str, dict[str, float]],
    series: list[str],
    seasons: dict[str, int] | None = None,
    candidates: tuple[str, ...] = (LSTM, *CLASSICAL),
    default: str = LSTM,
    switch_below: float = 1.0,
) -> Router:
    """The router: per series ``default``, unless the best other candidate's validation
    error is below ``switch_below`` x the default's (ties keep the default; among equally
    good others the earlier in ``candidates`` wins).

    ``default=lstm, switch_below=1``: the LSTM where it beats every classical candidate
    on validation, else the best classical candidate. A series with no validation windows
    gets the default if it was scored anywhere, else the best candidate over all series.
    """
    if default not in candidates:
        raise ValueError(f"the default model {default!r} is not a candidate ({candidates})")
    others = [c for c in candidates if c != default]
    choice: dict[str, str] = {}
    for sid, row in val_mase.items():
        mine = row.get(default, math.inf)
        best = min(others, key=lambda c: row.get(c, math.inf), default=None)
        theirs = math.inf if best is None else row.get(best, math.inf)
        if best is not None and (theirs < switch_below * mine or not math.isfinite(mine)):
            choice[sid] = best if math.isfinite(theirs) else default
        else:
            choice[sid] = default
    scored = any(math.isfinite(row.get(default, math.inf)) for row in val_mase.values())
    overall = default if scored or not val_mase else _best_overall(val_mase, candidates)
    for sid in series:
        choice.setdefault(str(sid), overall)
    return Router(choice, val_mase, tuple(candidates), dict(seasons or {}), default)


def _best_overall(val_mase: dict[str, dict[str, float]], candidates: tuple[str, ...]) -> str:
    means = {}
    for name in candidates:
        values = [row.get(name, math.inf) for row in val_mase.values()]
        finite = [v for v in values if math.isfinite(v)]
        means[name] = float(np.mean(finite)) if finite else math.inf
    return min(candidates, key=lambda c: means[c]) if candidates else LSTM


def route(router: Router, series_ids: np.ndarray, forecasts: dict[str, np.ndarray]) -> np.ndarray:
    """The routed forecasts [windows, steps]: each window takes its series' model's row."""
    names = np.array([router.model_of(s) for s in np.asarray(series_ids).astype(str)])
    first = next(iter(forecasts.values()))
    out = np.full(first.shape, np.nan)
    for name, predicted in forecasts.items():
        mask = names == name
        out[mask] = predicted[mask]
    missing = ~np.isin(names, list(forecasts))
    if missing.any():
        raise ValueError(
            f"the router serves {sorted(set(names[missing]))} but no forecasts of those "
            f"models were given (have {sorted(forecasts)})"
        )
    return out


@dataclass(frozen=True)
class RoutedRun:
    """A run's router and every candidate's paths [windows, steps] on val and test windows
    (``routed``: each window from its series' model), in original units."""

    router: Router
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


def combination_of(forecasts: dict[str, np.ndarray]) -> np.ndarray | None:
    """The combination: the mean of the LSTM's, AutoETS' and AutoTheta's forecasts (those
    given), each [windows, steps]; None without the LSTM and at least one of the others."""
    parts = [forecasts[name] for name in (LSTM, ETS, THETA) if name in forecasts]
    if LSTM not in forecasts or len(parts) < 2:
        return None
    return np.mean(np.stack(parts), axis=0)


def route_run(
    val: Any,
    test: Any,
    lstm_val: np.ndarray,
    lstm_test: np.ndarray,
    context: Any,
    candidates: tuple[str, ...],
    lstm_only: bool = False,
    default: str = LSTM,
    switch_below: float = 1.0,
    fits: dict[str, dict[str, ClassicalFit]] | None = None,
    series: list[str] | None = None,
    router: Router | None = None,
) -> RoutedRun:
    """Fit the classical candidates, choose each series' model on ``val``, route ``test``.

    ``val``/``test`` are window sets (``seriesflow/model/windows.py``), ``lstm_val`` and
    ``lstm_test`` the LSTM's paths [windows, steps] from their origins, ``context`` the
    run's ``SeriesContext`` (values, seasons, training lengths, MASE scales). Candidates
    are fit on each series' training part only; the choice compares the first
    ``horizon`` steps of the validation windows (never the test windows). ``fits``: the
    statsforecast models already fit per series (``fit_classical_models``), else fit here;
    the router keeps those of the series they serve (``router.json``). ``series``: those
    the router serves (default: every series of ``context``; a chunk's at scale).
    ``router``: one already chosen (on every chunk's validation errors): route by it.
    """
    from seriesflow.evaluation.scoring import (
        actuals,
        classical_forecasts,
        fit_classical_models,
    )

    steps = lstm_val.shape[1]
    fitted = tuple(c for c in candidates if c in CLASSICAL)
    if COMBINATION in candidates:  # the combination needs AutoETS and AutoTheta
        fitted = tuple(dict.fromkeys((*fitted, ETS, THETA)))
    if fits is None:  # one fit per series and model, for the val and the test origins alike
        fits = fit_classical_models(context, fitted, series)
    on_val = {LSTM: lstm_val, **classical_forecasts(val, context, steps, fitted, fits)}
    on_test = {LSTM: lstm_test, **classical_forecasts(test, context, steps, fitted, fits)}
    if COMBINATION in candidates:
        on_val[COMBINATION] = combination_of(on_val)
        on_test[COMBINATION] = combination_of(on_test)
    series = sorted(str(s) for s in (context.values if series is None else series))
    seasons = {sid: int(context.season.get(sid, 1)) for sid in series}
    if router is None:
        if lstm_only:
            router = Router.lstm_only(series, seasons)
        else:
            horizon = val.horizon
            errors = validation_mase(
                val.series_id,
                actuals(val, context),
                {name: on_val[name][:, :horizon] for name in candidates},
                context.scale,
            )
            router = choose(errors, series, seasons, candidates, default, switch_below)
        router = router.with_fits(fits)
    on_val[ROUTED] = route(router, val.series_id, on_val)
    on_test[ROUTED] = route(router, test.series_id, on_test)
    return RoutedRun(router, on_val, on_test)
