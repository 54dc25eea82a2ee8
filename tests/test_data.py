import torch

from aelab.data.splits import DynamicBinary, GreyLevels, ImageData, StaticBinary


def test_splits_are_the_documented_ones(mnist):
    data = ImageData.from_arrays(mnist, GreyLevels(), val_size=5000)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert torch.equal(data.val.images[:, 0], torch.from_numpy(mnist.train_images[55000:].copy()))
    assert torch.equal(data.test.labels, torch.from_numpy(mnist.test_labels.astype("int64")))
    small = ImageData.from_arrays(mnist, GreyLevels(), val_size=5000, train_size=100)
    assert len(small.train) == 100 and torch.equal(small.val.images, data.val.images)


def test_an_epoch_visits_every_training_image_once(small_data):
    g = torch.Generator().manual_seed(0)
    batches = list(small_data.train_batches(100, g))
    assert [len(b.y) for b in batches] == [100] * 5 + [12]
    seen = torch.cat([b.x.flatten(1) for b in batches])
    assert seen.dtype == torch.float32 and 0 <= seen.min() and seen.max() <= 1
    expected = small_data.train.images.flatten(1).float().div(255)
    assert torch.allclose(seen.sum(0), expected.sum(0), atol=1e-3)  # the same images, reordered
    assert not torch.equal(seen, expected)


def test_static_binarization_thresholds_at_half(mnist):
    data = ImageData.from_arrays(mnist, StaticBinary(), val_size=100, train_size=100)
    grey = torch.from_numpy(mnist.test_images.copy()).float() / 255
    x = torch.cat([b.x for b in data.eval_batches(data.test, 5000)])[:, 0]
    assert torch.equal(x, (grey > 0.5).float())


def test_dynamic_binarization_is_fresh_for_training_and_fixed_for_evaluation(mnist):
    a = ImageData.from_arrays(mnist, DynamicBinary(), val_size=1000, train_size=2000)
    b = ImageData.from_arrays(mnist, DynamicBinary(), val_size=1000, train_size=2000)
    assert torch.equal(a.test.images, b.test.images) and set(a.test.images.unique().tolist()) == {0, 255}
    g = torch.Generator().manual_seed(0)
    e1 = next(a.train_batches(2000, g))
    e2 = next(a.train_batches(2000, g))
    assert set(e1.x.unique().tolist()) == {0.0, 1.0}
    assert e1.x.sum() != e2.x.sum()  # ~200,000 coin flips, drawn again
    # The draws are unbiased: their mean matches the grey levels' mean.
    grey_mean = a.train.images.float().div(255).mean()
    assert abs(e1.x.mean() - grey_mean) < 0.002
