import json
import math

import numpy as np
import pytest
import torch
from conftest import cli

from edgedistill.analysis.surrogate import BoxMixture, Grower, TreeSettings, choose_split, predict, structure
from edgedistill.analysis.surrogate_split import best_splits, compare, looks
from edgedistill.analysis.surrogate_stability import cart_structure, structure_stability

# --- the split test on synthetic problems whose answer is known ----------------------------------------------


def _counting_draw(label, d=4, seed=0):
    """Standard-normal features labelled by `label`; counts its calls (one per round of the sampler)."""
    rng = np.random.default_rng(seed)
    calls = []

    def draw(n):
        calls.append(n)
        x = rng.standard_normal((n, d))
        return x, label(x, rng)
    return draw, calls


def test_the_split_test_picks_the_true_split_in_one_round():
    draw, calls = _counting_draw(lambda x, _: (x[:, 2] > 0.3).astype(int))
    c = choose_split(draw, 2, batch=400, budget=20_000, alpha=0.05)
    assert c.split.feature == 2 and abs(c.split.threshold - 0.3) < 0.05
    assert c.significant and c.p_value < 1e-6
    assert calls == [400] and c.n_samples == 400 and len(c.rounds) == 1


def test_the_sampler_stops_adding_samples_once_significant():
    # f0 matters a little more than f1: it takes several rounds before the test can tell them apart
    draw, calls = _counting_draw(lambda x, rng: (x[:, 0] + 0.8 * x[:, 1] + rng.normal(size=len(x)) > 0).astype(int))
    batch, budget, alpha = 100, 200_000, 0.05
    c = choose_split(draw, 2, batch=batch, budget=budget, alpha=alpha)
    level = alpha / looks(batch, budget)
    ps = [p for _, p in c.rounds]
    assert c.significant and c.split.feature == 0
    assert len(ps) >= 2, "the problem should need more than one round"
    assert all(p >= level for p in ps[:-1]) and ps[-1] < level  # stopped at the first significant look
    assert len(calls) == len(ps) and calls == [batch * 2 ** max(0, i - 1) for i in range(len(calls))]
    assert c.n_samples == sum(calls) == batch * 2 ** (len(ps) - 1) < budget


def test_an_inseparable_problem_spends_the_budget_and_says_so():
    draw, calls = _counting_draw(lambda x, rng: rng.integers(0, 2, len(x)))  # labels ignore the features
    c = choose_split(draw, 2, batch=200, budget=3000, alpha=0.05)
    assert not c.significant and c.split is not None and c.p_value >= 0.05 / looks(200, 3000)
    assert c.n_samples == 3000 == sum(calls) and len(c.rounds) == looks(200, 3000) == 5  # 200,400,800,1600,3000


def test_a_pure_node_is_a_leaf_without_drawing_more():
    draw, calls = _counting_draw(lambda x, _: np.zeros(len(x), dtype=int))
    c = choose_split(draw, 3, batch=100, budget=1000, alpha=0.05)
    assert c.split is None and calls == [100] and c.counts == [100, 0, 0]


def test_best_splits_finds_every_features_best_threshold():
    x = np.array([[0.0, 5], [1, 4], [2, 3], [3, 2], [4, 1], [5, 0], [6, 2.5], [7, 7], [8, 8], [9, 9], [10, 10], [11, 11]])
    y = np.array([0] * 6 + [1] * 6)
    s = best_splits(x, y, 2, min_leaf=2)
    assert (s[0].feature, s[0].threshold, s[0].gain) == (0, 5.5, pytest.approx(0.5))
    assert s[1].feature == 1 and s[1].gain < 0.5


def test_delta_method_se_matches_the_spread_over_replicates():
    """The hand-written variance of a Gini-gain difference against a Monte Carlo estimate of it."""
    from edgedistill.analysis.surrogate_split import Split

    rng = np.random.default_rng(0)
    a, b = Split(0, 0.0, 0), Split(1, 0.2, 0)
    diffs, zs = [], []
    for _ in range(300):
        x = rng.standard_normal((1500, 2))
        y = (x[:, 0] + x[:, 1] + rng.normal(size=1500) > 0).astype(int)
        z, _ = compare(x, y, 2, a, b)
        diffs.append(_gain(x, y, a) - _gain(x, y, b))
        zs.append(z)
    diffs = np.array(diffs)
    se_mc = diffs.std(ddof=1)
    se_delta = np.median(diffs / np.array(zs))
    assert se_delta == pytest.approx(se_mc, rel=0.15)


def _gain(x, y, s):
    from edgedistill.analysis.surrogate_split import gini

    right = x[:, s.feature] > s.threshold
    return gini(y, 2) - right.mean() * gini(y[right], 2) - (~right).mean() * gini(y[~right], 2)


# --- the box sampler -------------------------------------------------------------------------------------------


def test_box_mixture_draws_stay_in_the_box_and_follow_the_mass():
    mix = BoxMixture(np.array([0.5, 0.5]), np.array([[-3.0, 0.0], [3.0, 0.0]]), np.ones((2, 2)))
    rng = np.random.default_rng(0)
    lo, hi = np.array([0.0, -np.inf]), np.array([np.inf, 0.5])
    x = mix.sample(4000, lo, hi, rng)
    assert (x[:, 0] >= 0).all() and (x[:, 1] <= 0.5).all()
    assert x[:, 0].mean() == pytest.approx(3.0, abs=0.1)  # the left component has almost no mass there
    from scipy.stats import norm

    want = np.log(norm.sf(3.0) * norm.cdf(0.5)), np.log(norm.sf(-3.0) * norm.cdf(0.5))
    assert mix.log_mass(lo, hi) == pytest.approx(np.array(want))


def test_a_tree_grown_on_a_known_teacher_recovers_it():
    label = lambda x: (x[:, 2] > 0.3).astype(int) + 2 * ((x[:, 0] > 0.5) & (x[:, 2] > 0.3))
    mix = BoxMixture(np.array([1.0]), np.zeros((1, 4)), np.ones((1, 4)))
    g = Grower(mix, label, 4, TreeSettings(depth=2, batch=400, budget=20_000, alpha=0.05), np.random.default_rng(0))
    tree = g.grow()
    assert structure(tree, 1) == "f2" and tree.right.split.feature == 0
    x = np.random.default_rng(1).standard_normal((5000, 4))
    assert (predict(tree, x) == label(x)).mean() > 0.97


# --- stability -----------------------------------------------------------------------------------------------


def test_stability_of_a_hand_made_list_of_structures():
    s = structure_stability(["f1(f0,f2)", "f1(f0,f2)", "f2(f0,-)", "f3(-,-)"])
    # frequencies 1/2, 1/4, 1/4: H = 0.5·1 + 2·0.25·2 = 1.5 bits
    assert s["distinct"] == 3 and s["entropy_bits"] == pytest.approx(1.5)
    assert s["most_common"] == "f1(f0,f2)" and s["most_common_share"] == 0.5
    assert structure_stability(["f0"] * 7)["entropy_bits"] == 0.0
    assert structure_stability([f"f{i}" for i in range(8)])["entropy_bits"] == pytest.approx(math.log2(8))


def test_cart_structure_reads_sklearn_trees_in_the_same_notation():
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).standard_normal((2000, 3))
    y = (x[:, 1] > 0).astype(int) + 2 * ((x[:, 1] > 0) & (x[:, 2] > 0))
    c = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
    assert cart_structure(c, 1) == "f1" and cart_structure(c, 2).startswith("f1(") and cart_structure(c, 2).endswith(",f2)")


# --- the teacher's head on PCA coordinates -------------------------------------------------------------------


def test_lossless_pca_reproduces_the_teachers_predictions():
    from edgedistill.analysis.embedding import classifier_head, embed, fit_features
    from edgedistill.models import create_model

    torch.manual_seed(0)
    model = create_model("cifar:resnet8", 10).eval()
    images = torch.utils.data.TensorDataset(torch.randn(80, 3, 16, 16), torch.zeros(80, dtype=torch.long))
    name, head = classifier_head(model, 10)
    emb, logits = embed(model, head, images, 32, torch.device("cpu"))
    assert name == "fc" and emb.shape == (80, 64)
    with torch.no_grad():
        assert np.allclose(head(torch.as_tensor(emb, dtype=torch.float32)).numpy(), logits, atol=1e-4)
    feats = fit_features(emb, head, 64, seed=0)  # every component: the reconstruction is the embedding
    assert (feats.label(feats.pca.transform(emb)) == logits.argmax(1)).all()


# --- the command: bad input, then end to end ------------------------------------------------------------------


def _fake_run(folder, teacher=True):
    """recipe.yaml + metrics.json: enough for every check that comes before a model is loaded."""
    from edgedistill.recipe import load_recipe

    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(load_recipe(None, ["data.source=digits"]).to_yaml())
    models = {"teacher": {}, "student": {}} if teacher else {"student": {}}
    (folder / "metrics.json").write_text(json.dumps({"models": models, "class_names": list("0123456789"),
                                                     "scheme": "online" if not teacher else "offline"}))
    return folder


@pytest.mark.parametrize("args,key", [
    (["--depth", "9"], "explain.depth"),
    (["--depth", "0"], "explain.depth"),
    (["--samples", "10"], "explain.samples"),
    (["--repeats", "1"], "explain.repeats"),
    (["explain.alpha=0"], "explain.alpha"),
    (["explain.alpha=0.9"], "explain.alpha"),
    (["explain.batch=5000", "explain.samples=1000"], "explain.batch"),
    (["--device", "tpu"], "--device"),
])
def test_explain_bad_settings_exit_2_naming_the_key(tmp_path, capsys, args, key):
    code, _out, err = cli(capsys, "explain", str(_fake_run(tmp_path / "run")), *args)
    assert code == 2 and key in err and "Traceback" not in err
    assert any(w in err for w in ("allowed", "less than", "greater than"))  # says what is allowed


def test_explain_without_a_teacher_exit_2(tmp_path, capsys):
    code, _out, err = cli(capsys, "explain", str(_fake_run(tmp_path / "run", teacher=False)))
    assert code == 2 and "no teacher" in err and "explain needs" in err
    code, _out, err = cli(capsys, "explain", str(_fake_run(tmp_path / "run2") / "nothing"))
    assert code == 2 and "recipe.yaml" in err


def test_explain_of_a_detection_run_exit_2_naming_the_task(tmp_path, capsys):
    """A detector has no single classifier head: refused by the run's task, before any model is read."""
    from edgedistill.recipe import load_recipe

    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(load_recipe("recipes/det-demo.yaml").to_yaml())
    (run / "metrics.json").write_text(json.dumps({"task": "detection", "class_names": ["a", "b", "c", "d"]}))
    code, _out, err = cli(capsys, "explain", str(run))
    assert code == 2 and "task=detection" in err and "RUN_DIR" in err and "Traceback" not in err


TINY = ["data.image_size=16", "data.max_train_samples=256", "data.max_val_samples=64", "teacher.model=cifar:resnet8",
        "teacher.epochs=2", "train.epochs=1", "train.batch_size=32", "eval.latency_runs=1", "eval.warmup_runs=1",
        "eval.baseline=false"]


def check_explain(ex: dict) -> None:
    """What explain.json must say after the end-to-end test's explain (depth 2, 3 repeats, 2000 samples in
    batches of 200, alpha 0.05, 256 train images)."""
    st = ex["stability"]
    for method in st.values():  # each level's stability is what its 3 fits' structures say
        for level in ("root", "top2"):
            counts = list(method[level]["counts"].values())
            entropy = -sum(c / 3 * math.log2(c / 3) for c in counts)
            assert sum(counts) == 3 and method[level]["distinct"] == len(counts), method[level]
            assert method[level]["entropy_bits"] == pytest.approx(entropy, abs=1e-9)
            assert method[level]["most_common_share"] == pytest.approx(max(counts) / 3)
    at = st["approximation_tree"]
    tree = ex["tree"]  # the first fit's root: always split (a depth-2 tree of an unfinished teacher's labels)
    assert sum(tree["counts"]) == tree["n_samples"] and tree["label"] == tree["counts"].index(max(tree["counts"]))
    sizes = [n for n, _ in tree["rounds"]]  # a batch, then doubling, capped at the sample budget
    assert sizes == [min(200 * 2**i, 2000) for i in range(len(sizes))] and sizes[-1] == tree["n_samples"]
    level = 0.05 / 5  # alpha over the 5 looks 200..2000 can take (Bonferroni)
    assert all(p >= level for _, p in tree["rounds"][:-1])  # it stops at the first significant look
    assert tree["p_value"] == tree["rounds"][-1][1] and tree["significant"] == (tree["p_value"] < level)
    assert tree["significant"] or tree["n_samples"] == 2000  # or spends the budget
    majority = 100 * max(tree["counts"]) / tree["n_samples"]  # agreement of the constant guess
    assert at["fresh"]["mean"] > majority + 2 and st["cart_pseudo"]["fresh"]["mean"] > majority + 2
    # each tree drew the root's samples and its children's (> 256): CART on real images takes all n_train (256)
    # images, CART on pseudo-samples as many as the approximation tree drew
    assert at["n_samples"]["mean"] >= 600
    assert st["cart_real"]["n_samples"] == {"mean": float(ex["n_train"]), "std": 0.0}
    assert st["cart_pseudo"]["n_samples"] == at["n_samples"]


@pytest.mark.slow
def test_explain_end_to_end_on_digits(tmp_path, capsys):
    code, _out, err = cli(capsys, "demo", *TINY, f"output.dir={tmp_path}")
    assert code == 0, err
    run = tmp_path / "demo"
    # more components than the embedding has dimensions or train images − 1: refused before any embedding
    code, _out, err = cli(capsys, "explain", str(run), "explain.max_images=50", "explain.components=60")
    assert code == 2 and "explain.components" in err and "allowed: 2 to 49" in err
    code, out, err = cli(capsys, "explain", str(run), "--repeats", "3", "--depth", "2", "explain.samples=2000",
                         "explain.batch=200", "explain.fresh=1000", "explain.components=4")
    assert code == 0, err
    assert "Approximation tree vs CART" in out
    ex = json.loads((run / "explain" / "explain.json").read_text())
    assert ex["settings"]["depth"] == 2 and ex["settings"]["repeats"] == 3 and len(ex["features"]["names"]) == 4
    assert set(ex["stability"]) == {"approximation_tree", "cart_real", "cart_pseudo"}
    check_explain(ex)
    html = (run / "explain" / "report.html").read_text()
    assert "data:image/png;base64" in html and "Stability over 3 fits" in html
    assert (run / "explain" / "tree.png").stat().st_size > 1000
