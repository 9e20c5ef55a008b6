"""Ensembles over seeds: the members are the fits their seeds give alone, trained as stacks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_equal_fits, assert_same_kind

import xpnet
import xpnet.estimators._ensemble as ensemble_module
from xpnet._host import to_numpy


def _data(n=90, n_in=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = np.tanh(X @ rng.normal(size=n_in)) + 0.05 * rng.normal(size=n)
    labels = np.array(["low", "mid", "high"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.7)]
    return X, y, labels


def _counting_stacks(monkeypatch):
    """The sizes of the stacks the ensemble trains, as it trains them."""
    sizes = []
    fit_stack = ensemble_module.fit_stack

    def counted(estimators, *args, **kwargs):
        sizes.append(len(estimators))
        return fit_stack(estimators, *args, **kwargs)

    monkeypatch.setattr(ensemble_module, "fit_stack", counted)
    return sizes


def _alone(member, X, y, sample_weight=None):
    """The member's settings and seed, fitted on its own."""
    return type(member)(**member.get_params()).fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize(
    "settings",
    [
        dict(solver="adam", batch_size=16, max_iter=12),
        dict(solver="sgd", momentum=0.9, batch_size=None, max_iter=15),
        dict(solver="sgd", batch_size=20, early_stopping=True, n_iter_no_change=3, max_iter=40),
    ],
    ids=["adam-mini-batch", "momentum-full-batch", "early-stopping"],
)
def test_each_member_is_its_seeds_own_fit(monkeypatch, settings):
    """Five members in stacks of at most two: each equals the fit of its settings and
    seed alone (its initial weights, batch order and early-stopping split are its own),
    and the ensemble predicts their average."""
    X, y, _ = _data()
    s = np.random.default_rng(2).uniform(0.5, 2.0, size=len(X))
    sizes = _counting_stacks(monkeypatch)
    base = xpnet.MLPRegressor(hidden_layer_sizes=(6,), learning_rate=0.01, **settings)
    ens = xpnet.SeedEnsembleRegressor(base, n_estimators=5, random_state=7, max_stack=2)
    ens.fit(X, y, sample_weight=s)
    assert sizes == [2, 2, 1]
    seeds = [m.random_state for m in ens.estimators_]
    assert len(set(seeds)) == 5 and base.random_state is None  # the user's estimator untouched
    for member in ens.estimators_:
        assert_equal_fits(_alone(member, X, y, s), member, rtol=1e-11)
    mean = np.mean([m.predict(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict(X), mean, rtol=1e-15)
    assert ens.n_features_in_ == 4
    # The same random_state draws the same seeds; another draws others.
    again = xpnet.SeedEnsembleRegressor(base, n_estimators=5, random_state=7, max_stack=2)
    assert [m.random_state for m in again.fit(X, y, sample_weight=s).estimators_] == seeds
    other = xpnet.SeedEnsembleRegressor(base, n_estimators=5, random_state=8).fit(X, y)
    assert [m.random_state for m in other.estimators_] != seeds


def test_a_classifier_ensemble_votes_with_its_averaged_probabilities():
    X, _, labels = _data()
    base = xpnet.MLPClassifier(hidden_layer_sizes=(5,), batch_size=16, max_iter=10)
    ens = xpnet.SeedEnsembleClassifier(base, n_estimators=4, random_state=0).fit(X, labels)
    np.testing.assert_array_equal(ens.classes_, ["high", "low", "mid"])
    P = np.mean([m.predict_proba(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), P, rtol=1e-15)
    np.testing.assert_allclose(ens.predict_log_proba(X), np.log(P), rtol=1e-15)
    np.testing.assert_array_equal(ens.predict(X), ens.classes_[np.argmax(P, axis=1)])
    assert ens.score(X, labels) == np.mean(ens.predict(X) == labels)
    for member in ens.estimators_:
        assert_equal_fits(_alone(member, X, labels), member, rtol=1e-11)


def test_multilabel_members_vote_label_by_label():
    X, _, _ = _data()
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0], axis=1).astype(int)
    ens = xpnet.SeedEnsembleClassifier(
        xpnet.MLPClassifier(hidden_layer_sizes=(5,), max_iter=10), n_estimators=3, random_state=0
    ).fit(X, Y)
    P = np.mean([m.predict_proba(X) for m in ens.estimators_], axis=0)
    np.testing.assert_array_equal(ens.predict(X), (P > 0.5).astype(int))


def test_on_every_backend_the_ensemble_predicts_in_xs_namespace(backend):
    X, y, _ = _data(n=40)
    Xb = backend.asarray(X)
    base = xpnet.MLPRegressor(hidden_layer_sizes=(4,), batch_size=10, max_iter=4)
    ens = xpnet.SeedEnsembleRegressor(base, n_estimators=3, random_state=0)
    ens.fit(Xb, backend.asarray(y))
    assert_same_kind(ens.predict(Xb), backend, shape=(40,))
    expected = np.mean([to_numpy(m.predict(Xb)) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(to_numpy(ens.predict(Xb)), expected, rtol=1e-6)


def test_a_shared_order_gathers_each_batch_once_for_every_member():
    """With ``shared_order=True`` a stack's members step through one order per epoch,
    drawn from one generator: each member equals itself trained alone in that order."""
    from xpnet.estimators._stack import fit_stack

    X, y, _ = _data()
    base = xpnet.MLPRegressor(hidden_layer_sizes=(5,), solver="adam", batch_size=16,
                              max_iter=6)  # fmt: skip
    members = [xpnet.MLPRegressor(**{**base.get_params(), "random_state": k}) for k in range(3)]
    rows = [np.arange(len(X))] * 3
    together = fit_stack(members, X, y, rows, shared_order=np.random.default_rng(5))
    for member in together:
        fresh = xpnet.MLPRegressor(**member.get_params())
        (alone,) = fit_stack([fresh], X, y, rows[:1], shared_order=np.random.default_rng(5))
        assert_equal_fits(alone, member, rtol=1e-12)
    own = _alone(together[0], X, y)  # its own order: another trajectory
    assert not np.allclose(own.loss_curve_, together[0].loss_curve_)
    # Unshuffled, the shared order is every member's own: the members are their own fits.
    unshuffled = base.set_params(shuffle=False)
    ens = xpnet.SeedEnsembleRegressor(unshuffled, n_estimators=3, random_state=0,
                                      shared_order=True).fit(X, y)  # fmt: skip
    for member in ens.estimators_:
        assert_equal_fits(_alone(member, X, y), member, rtol=1e-11)
    # The same orders whatever the split into stacks: a fixed random_state, fixed members.
    shared = [
        xpnet.SeedEnsembleRegressor(base.set_params(shuffle=True), n_estimators=3,
                                    random_state=0, shared_order=True, max_stack=most).fit(X, y)
        for most in (None, 2, 1)
    ]  # fmt: skip
    for other in shared[1:]:
        for a, b in zip(shared[0].estimators_, other.estimators_, strict=True):
            assert_equal_fits(a, b, rtol=0)
    lbfgs = xpnet.SeedEnsembleRegressor(xpnet.MLPRegressor(solver="lbfgs"), shared_order=True)
    with pytest.raises(ValueError, match="shared_order=True trains the members as stacks"):
        lbfgs.fit(X, y)
    with pytest.raises(ValueError, match=r"shared_order needs every network .* same samples"):
        fit_stack(members, X, y, [rows[0], rows[0][:50], rows[0]],
                  shared_order=np.random.default_rng(5))  # fmt: skip


def test_members_that_cannot_share_a_stack_are_fitted_one_by_one(monkeypatch):
    X, y, _ = _data()
    sizes = _counting_stacks(monkeypatch)
    base = xpnet.MLPRegressor(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=20)
    ens = xpnet.SeedEnsembleRegressor(base, n_estimators=3, random_state=0).fit(X, y)
    assert sizes == []
    for member in ens.estimators_:
        assert_equal_fits(_alone(member, X, y), member, rtol=0)


def test_a_diverging_member_fails_the_fit_as_its_own_fit_would():
    X, y, _ = _data()
    base = xpnet.MLPRegressor(hidden_layer_sizes=(6,), activation="relu", solver="sgd",
                              learning_rate=50.0, max_iter=40)  # fmt: skip
    ens = xpnet.SeedEnsembleRegressor(base, n_estimators=3, random_state=0)
    with pytest.raises(ValueError, match="diverged"):
        ens.fit(X, y * 1e3)
    assert not hasattr(ens, "estimators_")


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (dict(n_estimators=0), ValueError, "n_estimators must be an int of at least 1, got 0"),
        (dict(n_estimators="3"), ValueError, "n_estimators must be an int .* got '3'"),
        (dict(max_stack=0), ValueError, "max_stack must be None or an int .* got 0"),
        (dict(estimator=xpnet.MLPClassifier()), TypeError, "takes an unfitted MLPRegressor"),
        (dict(random_state="seed"), ValueError, "random_state must be None, an int"),
        (dict(shared_order="yes"), ValueError, "shared_order must be True or False, got 'yes'"),
        (
            dict(estimator=xpnet.MLPRegressor(early_stopping=True), shared_order=True),
            ValueError,
            "shared_order=True cannot be used with early_stopping=True",
        ),
    ],
)
def test_bad_settings_are_named(params, error, match):
    X, y, _ = _data(n=20)
    with pytest.raises(error, match=match):
        xpnet.SeedEnsembleRegressor(**params).fit(X, y)


def test_a_bad_member_setting_is_named_as_its_own_fit_names_it():
    torch = pytest.importorskip("torch")
    X, y, _ = _data(n=20)
    base = xpnet.MLPRegressor(engine="jit", batch_size="x")  # on PyTorch, jit stacks ask it
    with pytest.raises(ValueError, match="batch_size must be"):
        xpnet.SeedEnsembleRegressor(base, n_estimators=2).fit(torch.from_numpy(X), y)


def test_a_grid_search_reaches_the_members_settings():
    sklearn = pytest.importorskip("sklearn.model_selection")
    X, y, _ = _data()
    ens = xpnet.SeedEnsembleRegressor(xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5),
                                      n_estimators=2, random_state=0)  # fmt: skip
    assert ens.get_params()["estimator__hidden_layer_sizes"] == (4,)
    search = sklearn.GridSearchCV(ens, {"estimator__alpha": [0.0, 1.0]}, cv=2).fit(X, y)
    assert {m.alpha for m in search.best_estimator_.estimators_} == {
        search.best_params_["estimator__alpha"]
    }
    assert repr(ens).startswith("SeedEnsembleRegressor(estimator=MLPRegressor(")


def test_dataframe_feature_names_are_kept():
    pd = pytest.importorskip("pandas")
    X, y, _ = _data()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ens = xpnet.SeedEnsembleRegressor(xpnet.MLPRegressor(hidden_layer_sizes=(4,), max_iter=3),
                                      n_estimators=2, random_state=0).fit(frame, y)  # fmt: skip
    np.testing.assert_array_equal(ens.feature_names_in_, ["a", "b", "c", "d"])
    assert not hasattr(ens.fit(X[:, :3], y), "feature_names_in_")  # a refit forgets them
    assert ens.n_features_in_ == 3
    with pytest.raises(xpnet.NotFittedError):
        xpnet.SeedEnsembleClassifier().predict(X)
