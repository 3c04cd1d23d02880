"""cluster.yaml: valid for Ray's cluster launcher (its shipped schema and config preparation).

No cloud call: ``prepare_config`` only merges the provider's shipped defaults and
``validate_config`` checks the result against ``ray/autoscaler/ray-schema.json``.
"""

from __future__ import annotations

import copy
import json
import pathlib

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_ray_schema(config):
    import ray.autoscaler

    schema = json.loads((pathlib.Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the file as written
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # and after Ray fills in the provider defaults
    assert prepared["provider"]["type"] == "aws"


def test_cluster_yaml_layout(config):
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head must host no actors"
    gpu_types = [n for name, n in nodes.items() if name != config["head_node_type"] and n.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu_types, "a GPU worker type is needed"
    assert any(n.get("max_workers", config["max_workers"]) > n.get("min_workers", 0) for n in gpu_types), "GPU workers must autoscale"
    setup = " ".join(config["setup_commands"])
    assert "pip install -e" in setup and "[cuda12]" in setup
    assert "." in config["file_mounts"].values()


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c.pop("head_node_type"),
        lambda c: c.update(max_workerz=3),
        lambda c: c["available_node_types"]["gpu_worker"].update(min_workers="many"),
        lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=20),
    ],
    ids=["no-head-type", "unknown-field", "bad-type", "min-above-max"],
)
def test_broken_cluster_yaml_is_rejected(config, breakage):
    broken = copy.deepcopy(config)
    breakage(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(broken))
