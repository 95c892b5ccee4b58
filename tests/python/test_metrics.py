"""voxelytics.metrics: segmentation scores against skimage.metrics, detections against an optimal
assignment, connectome and run-length scores on small worked examples, and bad input."""

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import metrics

skm = pytest.importorskip("skimage.metrics")


def random_pair(shape, n_truth, n_test, seed, dtype_truth=np.uint32, dtype_test=np.uint64):
    """A truth of blocky segments and a test that splits and merges some of them."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, n_truth, size=tuple(-(-s // 4) for s in shape))
    truth = np.kron(coarse, np.ones((4, 4, 4), np.int64))[: shape[0], : shape[1], : shape[2]]
    test = (truth * 7 + (rng.random(shape) < 0.1)) % n_test
    return truth.astype(dtype_truth), test.astype(dtype_test)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("order", ["C", "F", "mixed"])
def test_voi_and_arand_agree_with_skimage(seed, order):
    truth, test = random_pair((40, 33, 21), 30, 25, seed)
    if order == "F":
        truth, test = np.asfortranarray(truth), np.asfortranarray(test)
    elif order == "mixed":
        test = np.asfortranarray(test)
    split, merge = metrics.variation_of_information(truth, test)
    ref_split, ref_merge = skm.variation_of_information(truth, test)
    assert split == pytest.approx(ref_split, abs=1e-9) and merge == pytest.approx(ref_merge, abs=1e-9)
    are, precision, recall = metrics.adapted_rand_error(truth, test)
    ref_are, ref_prec, ref_rec = skm.adapted_rand_error(truth, test)
    assert are == pytest.approx(ref_are, abs=1e-9)
    # skimage's precision divides by the truth's pairs, its recall by the test's (see our docs).
    assert precision == pytest.approx(ref_rec, abs=1e-9) and recall == pytest.approx(ref_prec, abs=1e-9)
    s = metrics.segmentation_scores(truth, test)
    assert s.cremi_score == pytest.approx(
        np.sqrt(ref_are * sum(skm.variation_of_information(truth, test, ignore_labels=(0,)))), abs=1e-9
    )


def test_scores_agree_with_skimage_on_real_data(flyem):
    truth = flyem["test"]["gt"]
    for test in (
        flyem["test"]["fragments"],
        vx.connected_components((flyem["test"]["boundary"] < 0.5).astype(np.uint8))[0],
    ):
        split, merge = metrics.variation_of_information(truth, test, ignore_labels=(0,))
        ref = skm.variation_of_information(truth, test, ignore_labels=(0,))
        assert (split, merge) == pytest.approx(tuple(ref), abs=1e-9)
        assert metrics.adapted_rand_error(truth, test)[0] == pytest.approx(
            skm.adapted_rand_error(truth, test)[0], abs=1e-9
        )


def test_mask_and_ignore_labels():
    truth, test = random_pair((24, 24, 24), 10, 12, 5)
    mask = np.random.default_rng(1).random(truth.shape) < 0.7
    # Masking out voxels equals giving them an ignored truth label.
    hidden = np.where(mask, truth, 10**6).astype(np.uint32)
    masked = metrics.segmentation_scores(truth, test, mask=mask, ignore_labels=())
    ignored = metrics.segmentation_scores(hidden, test, ignore_labels=(10**6,))
    assert masked == ignored
    assert masked.voxels == mask.sum()
    assert (
        metrics.segmentation_scores(truth, test, ignore_labels=(0, 1)).voxels
        == np.isin(truth, (0, 1), invert=True).sum()
    )


def test_identical_empty_and_thread_independent():
    truth, test = random_pair((30, 30, 30), 20, 20, 3)
    s = metrics.segmentation_scores(truth, truth.astype(np.int64) + 5)  # relabelled copy: perfect
    assert (s.voi, s.arand, s.cremi_score) == (0.0, 0.0, 0.0)
    empty = metrics.segmentation_scores(np.zeros((0, 4, 4), np.uint8), np.zeros((0, 4, 4), np.uint8))
    assert empty.voxels == 0 and empty.voi == 0.0 and empty.arand == 0.0
    t1 = metrics.contingency_table(truth, test, threads=1)
    t2 = metrics.contingency_table(truth, test, threads=2)
    for field in ("truth", "test", "count"):
        np.testing.assert_array_equal(getattr(t1, field), getattr(t2, field))
    # The table itself, against numpy.
    keep = truth.ravel() != 0
    pairs, counts = np.unique(np.stack([truth.ravel()[keep], test.ravel()[keep]]), axis=1, return_counts=True)
    np.testing.assert_array_equal(t1.truth, pairs[0])
    np.testing.assert_array_equal(t1.test, pairs[1])
    np.testing.assert_array_equal(t1.count, counts)


def test_match_by_overlap():
    truth = np.array([[1, 1, 1, 2, 2, 0, 0]])
    test = np.array([[5, 5, 6, 6, 6, 6, 6]])
    assert metrics.match_by_overlap(truth, test) == {5: 1, 6: 2}


def test_tables_of_blocks_join_and_read_through_a_state():
    import pickle

    truth, test = random_pair((40, 36, 20), 30, 50, seed=9)
    whole = metrics.contingency_table(truth, test, ignore_labels=())
    blocks = [metrics.contingency_table(truth[:, :, z : z + 7], test[:, :, z : z + 7], ignore_labels=())
              for z in range(0, 20, 7)]  # fmt: skip
    joined = metrics.ContingencyTable.joined(pickle.loads(pickle.dumps(b)) for b in blocks)
    assert sum(len(b) for b in blocks) > len(whole)  # pairs in more than one block
    for key in ("truth", "test", "count"):
        np.testing.assert_array_equal(getattr(joined, key), getattr(whole, key))
    assert joined.total == whole.total == truth.size
    # A state (test label -> segment) read through the table: the scores of the relabelled volume.
    lookup = (np.arange(50) // 3).astype(np.uint64)
    merged = lookup[test]
    got = joined.without([0, 5]).relabeled(lookup).scores()
    assert got == metrics.segmentation_scores(truth, merged, ignore_labels=(0, 5))
    assert got.voi_merge > whole.without([0, 5]).scores().voi_merge  # the state merges: not the same
    assert joined.without([0]).relabeled(lookup).match_by_overlap() == metrics.match_by_overlap(truth, merged)
    with pytest.raises(ValueError, match="lookup covers test labels 0..9, the table has 49"):
        joined.relabeled(np.arange(10))


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"test has shape \(3, 3\) but the truth has \(3, 4\)"):
        metrics.segmentation_scores(np.zeros((3, 4), np.uint8), np.zeros((3, 3), np.uint8))
    with pytest.raises(TypeError, match="test has unsupported dtype float32"):
        metrics.segmentation_scores(np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="mask must be a bool or uint8"):
        metrics.segmentation_scores(np.zeros(4, np.uint8), np.zeros(4, np.uint8), mask=np.ones(4, np.float64))
    with pytest.raises(ValueError, match="finite"):
        metrics.detection_scores(np.zeros((1, 3)), np.zeros((1, 3)), max_distance=float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        metrics.detection_scores(np.full((1, 3), np.nan), np.zeros((1, 3)), max_distance=1)


def test_detection_matches_as_many_as_an_optimal_assignment():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(7)
    for _ in range(20):
        truth = rng.uniform(0, 1000, size=(rng.integers(0, 60), 3))
        predicted = np.concatenate([truth + rng.normal(0, 60, truth.shape), rng.uniform(0, 1000, (10, 3))])
        predicted = predicted[rng.permutation(len(predicted))[: rng.integers(0, len(predicted) + 1)]]
        s = metrics.detection_scores(truth, predicted, max_distance=100)
        close = np.linalg.norm(truth[:, None] - predicted[None], axis=2) <= 100
        rows, cols = linear_sum_assignment(close, maximize=True)  # maximum matching of "close" pairs
        assert s.true_positives == close[rows, cols].sum()
        assert len(set(s.matches[:, 0])) == len(s.matches) == len(set(s.matches[:, 1]))
        assert np.all(np.linalg.norm(truth[s.matches[:, 0]] - predicted[s.matches[:, 1]], axis=1) <= 100)
        assert s.precision == (s.true_positives / len(predicted) if len(predicted) else 1.0)


def test_partner_scores_with_ids():
    true_pre, true_post = np.array([[0, 0, 0], [500, 0, 0]]), np.array([[0, 0, 40], [500, 0, 40]])
    s = metrics.partner_scores(
        true_pre,
        true_post,
        true_pre + 5,
        true_post - 5,
        max_distance=20,
        true_ids=[(1, 2), (3, 4)],
        predicted_ids=[(1, 2), (3, 9)],
    )
    assert (s.true_positives, s.false_positives, s.false_negatives) == (1, 1, 1)


def test_connectome_scores_from_segmentation_match():
    truth = np.array([[1, 1, 2, 2, 3, 3]])
    test = np.array([[10, 11, 12, 12, 13, 13]])
    match = metrics.match_by_overlap(truth, test)
    s = metrics.connectome_scores([(1, 2, 4), (2, 3, 2)], [(10, 12, 3), (11, 12, 1), (12, 13, 2)], match)
    assert (s.true_edges, s.predicted_edges, s.common_edges) == (2, 2, 2)
    assert s.edge_f1 == 1.0 and s.weight_correlation == pytest.approx(1.0)
    assert metrics.connectome_scores([(1, 2, 4)], [(10, 12, 3)], match, weight_threshold=4).edge_recall == 0.0


def test_expected_run_length_from_positions():
    # Two straight skeletons along x, 10 nm between nodes; the second is cut in half.
    positions = np.array([[x, y, 0] for y in (0, 100) for x in range(0, 50, 10)], float)
    skeleton = np.repeat([1, 2], 5)
    edges = [(i, i + 1) for i in range(4)] + [(i, i + 1) for i in range(5, 9)]
    segments = np.array([4, 4, 4, 4, 4, 5, 5, 6, 6, 6])
    r = metrics.expected_run_length(skeleton, segments, edges, positions=positions)
    assert r.total_length == pytest.approx(80)
    assert r.erl == pytest.approx((40**2 + 10**2 + 20**2) / 80)
    assert r.max_erl == pytest.approx((40**2 + 40**2) / 80)
    assert r.split_edges == 1
    with pytest.raises(ValueError, match="either lengths or positions"):
        metrics.expected_run_length(skeleton, segments, edges)
