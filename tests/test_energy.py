"""Energy per image through CodeCarbon (measured vs estimated), energy budgets and the Performance-Cost Ratio."""

import json
import time

import pytest
from conftest import cli

from edgedistill.deploy.budget import STRICT_EXIT_CODE, budgets_passed, check_budgets, verdict
from edgedistill.deploy.energy import energy_meter, energy_per_image, energy_text
from edgedistill.errors import UserError
from edgedistill.evaluate.pcr import PCR_VARIANTS, pcr, pcr_all
from edgedistill.recipe import build_recipe


def _zone(root, uj, max_uj=1_000_000_000):
    """A RAPL package zone as the kernel lays it out: name, energy_uj, max_energy_range_uj."""
    z = root / "intel-rapl:0"
    z.mkdir(exist_ok=True)
    (z / "name").write_text("package-0\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def test_a_counter_tree_is_measured_through_codecarbon(tmp_path):
    """A fake RAPL tree read by CodeCarbon's own IntelRAPL (via our meter and directly): 2 J, wrap included."""
    zone = _zone(tmp_path, 5_000_000)
    with energy_meter(rapl_dir=str(tmp_path)) as e:
        (zone / "energy_uj").write_text("7000000\n")  # +2 J during the block
    assert e.kind == "measured" and e.label == "measured (Intel RAPL)"
    assert e.joules == pytest.approx(2.0, rel=1e-6)
    assert energy_text({"j_per_image": e.joules / 1000, "kind": e.kind}) == "2.000 mJ (measured)"

    (zone / "energy_uj").write_text("999000000\n")
    with energy_meter(rapl_dir=str(tmp_path)) as wrapped:
        (zone / "energy_uj").write_text("1000000\n")  # wrapped past max_energy_range_uj: 1 J to the top, 1 J after
    assert wrapped.joules == pytest.approx(2.0, rel=1e-6)

    from codecarbon.core.cpu import (
        IntelRAPL,  # the library's interface on the same tree, no tracker around it
    )
    from codecarbon.core.units import Time

    rapl = IntelRAPL(rapl_dir=str(tmp_path))
    rapl.start()
    (zone / "energy_uj").write_text("4000000\n")
    details = rapl.get_cpu_details(Time(seconds=1))
    assert sum(v for k, v in details.items() if k.startswith("Processor Energy Delta")) * 3.6e6 == pytest.approx(3.0)


def _busy(cpu_seconds):
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


def test_without_counters_the_estimate_is_positive_labelled_and_follows_busy_time():
    """CodeCarbon's model follows this process's CPU time: twice the busy time ≈ twice the joules (±30%)."""
    short = energy_per_image(lambda: _busy(0.05), 1, min_steps=4, min_seconds=0)
    if short["kind"] == "measured":
        pytest.skip(f"this machine has an energy counter ({short['label']}): the estimate is not used")
    long = energy_per_image(lambda: _busy(0.05), 1, min_steps=8, min_seconds=0)
    assert short["j_per_image"] > 0 and short["label"].startswith("estimated (model: CodeCarbon")
    assert "mJ (estimated)" in energy_text(short)
    ratio = (long["j_per_image"] * long["images"]) / (short["j_per_image"] * short["images"])
    assert 2 / 1.3 < ratio < 2 * 1.3, ratio


def _final(kind, j):
    return {"energy": {"j_per_image": j, "kind": kind, "label": f"{kind} (test)"}}


def test_an_estimated_energy_budget_says_so_and_counts_as_the_recipe_asks():
    def rows(policy, kind="estimated", limit=1.0, j=0.002):  # 2 mJ/image against a limit in mJ
        r = build_recipe({}, [f"deploy.budget.energy_mj={limit}", f"deploy.budget.energy_estimates={policy}"])
        return check_budgets(r.deploy.budget, _final(kind, j), {}, r.deploy)

    warn = rows("warn")
    assert warn[0]["passed"] is False and verdict(warn[0]) == "FAIL (estimated, not counted)"
    assert "estimated" in warn[0]["note"] and budgets_passed(warn)  # shown, never fails --strict
    count = rows("count")
    assert verdict(count[0]) == "FAIL (estimated)" and not budgets_passed(count)
    assert verdict(rows("count", limit=5)[0]) == "pass (estimated)"
    fail = rows("fail", limit=5)  # the figure is under the limit, but an estimate is not accepted
    assert fail[0]["passed"] is False and not budgets_passed(fail) and "wants a measured" in fail[0]["note"]
    measured = rows("fail", kind="measured", limit=5)
    assert verdict(measured[0]) == "pass" and "estimated" not in measured[0]["note"]
    with pytest.raises(Exception, match="energy_estimates"):
        build_recipe({}, ["deploy.budget.energy_estimates=maybe"])


def test_pcr_of_a_hand_made_pair():
    teacher = {"top1": 90.0, "latency_ms_median": 10.0, "size_mb": 40.0, "energy": {"j_per_image": 0.02},
               "flops": 1e9}
    student = {"top1": 81.0, "latency_ms_median": 2.0, "size_mb": 4.0, "energy": {"j_per_image": 0.005},
               "flops": 2e8}
    # retention 0.9; cost ratios 0.2, 0.1, 0.25, 0.2
    assert pcr_all(student, teacher) == pytest.approx({"latency": 4.5, "size": 9.0, "energy": 3.6, "flops": 4.5})
    assert pcr(teacher, teacher, "energy") == pytest.approx(1.0)
    assert pcr({**student, "energy": {"j_per_image": None}}, teacher, "energy") is None
    with pytest.raises(UserError, match="allowed: latency, size, energy, flops"):
        pcr(student, teacher, "speed")
    assert PCR_VARIANTS == ("latency", "size", "energy", "flops")


def test_unknown_pcr_variant_exits_2(capsys):
    code, _, err = cli(capsys, "demo", "eval.pcr=[latency, speed]")
    assert code == 2 and "eval.pcr" in err and "'energy'" in err and "Traceback" not in err


@pytest.mark.slow
def test_compress_reports_energy_labels_pcr_and_strict_follows_energy_estimates(tmp_path, capsys):
    """One real `compress` of a tiny file, resumed twice with other budget policies (the stage is reused)."""
    from test_compress_pipeline import _digits_model

    model = _digits_model(tmp_path / "m.safetensors")
    common = ["compress", str(model), "compress.stages=[{name: export}]", f"output.dir={tmp_path / 'runs'}",
              "compress.latency_runs=2", "compress.warmup_runs=0", "compress.parity_images=8",
              "deploy.budget.energy_mj=0.000000001"]
    code, out, err = cli(capsys, *common, "deploy.budget.energy_estimates=count", "--strict")
    out_dir = next((tmp_path / "runs").iterdir())
    result = json.loads((out_dir / "stages.json").read_text())
    final = result["stages"][-1]
    assert final["energy"]["j_per_image"] > 0 and final["energy"]["kind"] in ("measured", "estimated")
    assert set(final["pcr"]) == set(PCR_VARIANTS) and result["pcr_reference"] == "0-input"
    assert final["pcr"]["size"] is not None and (out_dir / "stages_accuracy_energy.png").is_file()
    assert code == STRICT_EXIT_CODE, err  # 1e-9 mJ/image: no figure, measured or estimated, meets it
    if final["energy"]["kind"] == "measured":
        pytest.skip("this machine measures energy: the estimate policies do not apply")
    assert "FAIL (estimated)" in out and "(estimated)" in out
    code, out, err = cli(capsys, *common, "deploy.budget.energy_estimates=warn", "--strict", "--resume")
    assert code == 0 and "not counted" in out, err
    code, out, err = cli(capsys, *common[:-1], "deploy.budget.energy_mj=1000000", "deploy.budget.energy_estimates=fail",
                         "--strict", "--resume")
    assert code == STRICT_EXIT_CODE and "wants a measured" in (out_dir / "stages.json").read_text()
