"""Config: schemas catch typos early; validate() catches disallowed values; data root rule."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from evalkit import config as config_mod
from evalkit.registry import Registry, RegistryError


def cfg(*overrides):
    config_mod.register()
    with initialize_config_dir(config_dir=str(config_mod.conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_defaults_compose_to_dlib_on_lfw_view2(monkeypatch):
    monkeypatch.setenv("EVALKIT_DATA_DIR", "/some/where")
    c = cfg()
    assert (c.dataset.name, c.protocol.name, c.backend.name) == ("lfw", "lfw_view2", "dlib")
    assert c.threshold.policy == "global_fmr" and c.threshold.target_fmr == 1e-3
    assert c.dataset.root == "/some/where/lfw"
    config_mod.validate(c)


def test_data_dir_falls_back_to_repo_datasets(monkeypatch):
    monkeypatch.delenv("EVALKIT_DATA_DIR", raising=False)
    assert cfg().data_dir == str(config_mod.REPO_ROOT / "datasets")


@pytest.mark.parametrize("override, needle", [
    ("threshold.target_fmrr=1e-4", "target_fmrr"),
    ("backend.upsampel=2", "upsampel"),
    ("dataset=lfww", "lfww"),
    ("threshold.target_fmr=abc", "target_fmr"),
])
def test_typos_fail_at_composition_naming_the_key(override, needle):
    with pytest.raises(ConfigCompositionException) as exc:
        cfg(override)
    assert needle in str(exc.value) + str(exc.value.__cause__)


@pytest.mark.parametrize("overrides, needle", [
    (["failure_policy=drop"], "failure_policy"),
    (["threshold.policy=per_group"], "threshold.policy"),
    (["threshold.target_fmr=0"], "target_fmr"),
    (["threshold=fixed", "threshold.value=null"], "threshold.value"),
    (["backend.distance=cosin"], "Did you mean 'cosine'"),
    (["dataset=csv", "dataset.name=x", "dataset.path=x.csv"], "protocol=generated"),
])
def test_validate_rejects_disallowed_values(overrides, needle):
    with pytest.raises(config_mod.ConfigError, match=needle):
        config_mod.validate(cfg(*overrides))


def test_backend_options_strip_runtime_keys():
    opts = config_mod.backend_options(cfg("backend=deepface-dlib").backend)
    assert opts["model_name"] == "Dlib" and opts["detector_backend"] == "opencv"
    assert not set(config_mod.BACKEND_RUNTIME_KEYS) & set(opts)


def test_registry_hints_and_duplicates():
    r = Registry("thing")
    r.register("alpha", "json:dumps")
    assert r.get("alpha").__name__ == "dumps"
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        r.get("alpah")
    with pytest.raises(RegistryError, match="already registered"):
        r.register("alpha", "json:loads")


def test_deepface_model_override_must_not_mislabel_the_run():
    with pytest.raises(config_mod.ConfigError, match="mislabelled"):
        config_mod.validate(cfg("backend=deepface-dlib", "backend.model_name=ArcFace"))
    config_mod.validate(cfg("backend=deepface-dlib", "backend.model_name=ArcFace", "backend.name=deepface-arcface"))
    config_mod.validate(cfg("backend=deepface-vgg-face"))


def test_policy_attribute_typos_fail_before_any_work():
    with pytest.raises(config_mod.ConfigError, match="Did you mean 'race'"):
        config_mod.validate(cfg("threshold=per_group_fmr", "threshold.attribute=rase"))
    with pytest.raises(config_mod.ConfigError, match="Did you mean 'sex'"):
        config_mod.validate(cfg("+reference.sexx=male"))
    config_mod.validate(cfg("threshold=per_group_fmr", "threshold.attribute=race", "+reference.sex=male"))
    with pytest.raises(config_mod.ConfigError, match="Did you mean 'race'"):
        config_mod.validate(cfg("intersections=[[sex,rase]]"))
