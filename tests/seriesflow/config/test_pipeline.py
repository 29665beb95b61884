import pytest
from pydantic import ValidationError

from seriesflow.config.pipeline import PipelineConfig, load_config


def test_defaults_reproduce_the_seed_model():
    cfg = PipelineConfig()
    assert (cfg.train.units, cfg.train.layers, cfg.train.activation) == (50, 1, "tanh")
    # the seed's batch 32 at Adam's 1e-3, scaled to batch 256 (x sqrt 8 ~ 3e-3): the
    # same model about 2.5x faster (benchmarks/train_speed.py), 32+ steps per epoch as before
    assert cfg.train.batch_size == 256
    assert cfg.train.learning_rate == pytest.approx(1e-3 * (256 / 32) ** 0.5)
    assert (cfg.train.jit_compile, cfg.train.deterministic) == (True, False)  # XLA
    assert (cfg.train.min_steps_per_epoch, cfg.train.min_batch_size) == (16, 32)
    # the seed's ReduceLROnPlateau could never fire (min_lr 0.001 == Adam's rate, and a
    # patience of 5 against no early stop); ours halves the rate after 3 flat epochs, down
    # to 1e-5, and stops after 8
    assert (cfg.train.reduce_lr_factor, cfg.train.reduce_lr_patience) == (0.5, 3)
    assert (cfg.train.min_lr, cfg.train.early_stopping_patience) == (1e-5, 8)


def test_lr_schedule_that_cannot_fire_is_rejected():
    with pytest.raises(ValidationError, match="min_lr"):
        PipelineConfig.model_validate({"train": {"learning_rate": 0.001, "min_lr": 0.001}})
    with pytest.raises(ValidationError, match="reduce_lr_patience"):
        PipelineConfig.model_validate(
            {"train": {"reduce_lr_patience": 5, "early_stopping_patience": 5}}
        )


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  epochs: 7\nwindow:\n  timesteps: 12\n")
    cfg = load_config(path, ["train.epochs=3", "columns.covariates=[temperature]"])
    assert cfg.train.epochs == 3
    assert cfg.window.timesteps == 12
    assert cfg.columns.covariates == ["temperature"]


def test_unknown_keys_and_bad_overrides_are_errors(tmp_path):
    with pytest.raises(ValidationError, match="epoch"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["train.epochs"])


def test_config_is_frozen():
    cfg = PipelineConfig()
    with pytest.raises(ValidationError):
        cfg.train.units = 3


def test_min_points_is_the_models_inputs_and_a_horizon():
    cfg = PipelineConfig.model_validate({"window": {"timesteps": 24, "horizon": 6}})
    assert cfg.min_points() == 30  # a whole input and a horizon; the split may be short
    fewer = {"window": {"timesteps": 24, "horizon": 6, "min_inputs": 8}}
    assert PipelineConfig.model_validate(fewer).min_points() == 14
    assert PipelineConfig().min_points() == 3  # horizon auto: known per series later
    own = PipelineConfig.model_validate({"validation": {"min_points_per_series": 40}})
    assert own.min_points() == 40


def test_default_yaml_mirrors_the_model():
    cfg = load_config("configs/default.yaml")
    assert cfg == PipelineConfig()


@pytest.mark.parametrize(
    ("workspace", "landing"),
    [
        ("work", "work"),  # landing is the workspace: ledger.parquet, mlflow.db get quarantined
        ("work", "."),  # landing contains the workspace
        ("work", "work/landing"),  # landing inside the workspace (its runs/, quarantine/...)
    ],
)
def test_landing_must_not_be_contain_or_sit_inside_the_workspace(tmp_path, workspace, landing):
    with pytest.raises(ValidationError) as caught:
        PipelineConfig.model_validate(
            {"paths": {"workspace": str(tmp_path / workspace), "landing": str(tmp_path / landing)}}
        )
    message = str(caught.value)
    assert str((tmp_path / workspace).resolve()) in message
    assert str((tmp_path / landing).resolve()) in message
    with pytest.raises(ValidationError, match="sits inside the workspace"):
        PipelineConfig.model_validate(
            {"paths": {"workspace": str(tmp_path / "work"), "landing": f"file://{tmp_path}/work/x"}}
        )
    ok = PipelineConfig.model_validate(
        {"paths": {"workspace": str(tmp_path / "work"), "landing": str(tmp_path / "in")}}
    )
    assert ok.paths.landing_path() == tmp_path / "in"
    as_url = PipelineConfig.model_validate(
        {"paths": {"workspace": str(tmp_path / "work"), "landing": f"file://{tmp_path}/in/"}}
    )
    assert as_url.paths.landing_location() == str(tmp_path / "in")


def test_files_settle_over_two_looks_at_least_30_s_apart_by_default():
    assert PipelineConfig().ingest.settle_seconds >= 30


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("register.tracking_uri", "https://ops:hunter2@mlflow.internal"),
        ("paths.landing", "s3://AKIAIOSFODNN7EXAMPLE:hunter2@bucket/in"),
        ("paths.landing", "https://store.internal/in?X-Amz-Signature=hunter2"),
        ("register.tracking_uri", "https://mlflow.internal/?token=hunter2"),
        ("register.tracking_uri", "https://mlflow.internal/?API_KEY=hunter2"),
        ("train.dask_address", "tls://ops:hunter2@scheduler:8786"),
        ("train.dask_address", "tcp://scheduler:8786?token=hunter2"),
        ("paths.reports_url", "https://ops:hunter2@reports.internal"),
        ("paths.reports_url", "https://reports.internal/runs?access_token=hunter2"),
    ],
)
def test_credentials_in_config_uris_are_refused_and_never_echoed(key, value):
    # the config is the flow's parameter: Prefect would store it with every run
    with pytest.raises(ValidationError) as caught:
        load_config(None, [f"{key}={value}"])
    assert "hunter2" not in str(caught.value)
    assert "environment" in str(caught.value)


def train_errors(**train) -> list[dict]:
    """The validation errors of a config with these train settings (none: it is valid)."""
    try:
        PipelineConfig.model_validate({"train": train})
    except ValidationError as exc:
        return exc.errors()
    return []


def test_an_epoch_maximum_below_its_minimum_is_rejected():
    (error,) = train_errors(min_windows_per_epoch=4096, max_windows_per_epoch=4000)
    assert error["loc"] == ("train",)
    assert error["msg"] == (
        "Value error, train.max_windows_per_epoch (4000) must be at least "
        "train.min_windows_per_epoch (4096), or the two bounds contradict each other"
    )
    assert train_errors(min_windows_per_epoch=4096, max_windows_per_epoch=4096) == []
    assert train_errors(min_windows_per_epoch=4096, max_windows_per_epoch=None) == []


def test_jit_compile_with_deterministic_training_is_rejected():
    (error,) = train_errors(deterministic=True)  # jit_compile is on by default
    assert error["loc"] == ("train",)
    assert error["msg"].startswith(
        "Value error, train.jit_compile needs train.deterministic: false"
    )
    assert train_errors(jit_compile=False, deterministic=True) == []


def test_history_points_must_be_at_least_one():
    (error,) = train_errors(history_points=0)
    assert (error["loc"], error["type"]) == (("train", "history_points"), "greater_than_equal")
    assert train_errors(history_points=1) == []
    assert train_errors(history_points=None) == []  # null: every training point


def test_covariates_is_the_older_name_of_past_and_each_column_is_one_kind():
    old = PipelineConfig.model_validate({"columns": {"covariates": ["temp"]}})
    new = PipelineConfig.model_validate({"columns": {"past": ["temp"]}})
    assert old.columns.past == old.columns.covariates == new.columns.covariates == ["temp"]
    assert PipelineConfig.model_validate(old.dump()).columns == old.columns  # a dump reloads
    with pytest.raises(ValidationError, match="covariates is the older name of past"):
        PipelineConfig.model_validate({"columns": {"covariates": ["a"], "past": ["b"]}})
    with pytest.raises(ValidationError, match=r"\['temp'\] named twice"):
        PipelineConfig.model_validate({"columns": {"past": ["temp"], "future": ["temp"]}})
    kinds = {"past": ["t"], "future": ["p"], "static": ["s"]}
    assert PipelineConfig.model_validate({"columns": kinds}).columns.kept == ["t", "p", "s"]


def test_feature_settings_are_checked():
    cfg = PipelineConfig()
    assert cfg.features.calendar is True and cfg.features.holidays is None
    with pytest.raises(ValidationError, match="not static columns"):
        PipelineConfig.model_validate({"features": {"static_categorical": ["region"]}})
    with pytest.raises(ValidationError, match="features.holidays"):
        PipelineConfig.model_validate({"features": {"holidays": {"country": "XX"}}})
    found = PipelineConfig.model_validate(
        {"features": {"holidays": {"country": "DE", "subdiv": "BY"}}}
    )
    assert found.features.holidays.subdiv == "BY"


def test_limits_default_to_measured_stage_times_times_a_margin():
    limits = PipelineConfig().limits
    # three retries of an I/O step, 2 s apart and doubling
    assert (limits.retries, limits.retry_delays()) == (3, [2.0, 4.0, 8.0])
    minutes = {name: value / 60 for name, value in limits.timeouts.model_dump().items()}
    assert minutes == {
        "retrain": 480,  # the stages below, end to end
        "ingest": 10,  # 4.6 s measured at 1,000 series x 10,000 points (docs/benchmarks.md)
        "validate": 15,  # 53.8 s
        "normalize": 10,  # 15.0 s
        "window": 10,  # 5.1 s
        "train": 360,  # 228 s an epoch x the default 50 + 2 epochs, x2
        "evaluate": 30,  # 401 s
        "register": 45,  # 17 s, and up to 30 minutes waiting for the registry lock
        "forecast": 30,
        "watch": 10,
        "tune": 1440,
    }
    # the stages fit in the whole run's limit
    stages = ("ingest", "validate", "normalize", "window", "train", "evaluate", "register")
    assert sum(limits.timeouts.of(s) for s in stages) <= limits.timeouts.retrain


def test_a_limit_can_be_lifted_and_an_unknown_one_is_an_error():
    cfg = load_config(None, ["limits.timeouts.train=null", "limits.retries=0"])
    assert cfg.limits.timeouts.of("train") is None and cfg.limits.retry_delays() == []
    with pytest.raises(ValueError, match="no time limit"):
        cfg.limits.timeouts.of("deploy")
    with pytest.raises(ValidationError, match="greater than 0"):
        load_config(None, ["limits.timeouts.ingest=0"])
