

def test_task_defaults():
    from posenc.config import FitConfig

    assert FitConfig.for_task("image").network.output == "sigmoid"
    for task in ("signal1d", "silhouette", "sdf", "occupancy"):
        assert FitConfig.for_task(task).network.output == "none", task
    sil = FitConfig.for_task("silhouette")
    assert (sil.network.depth, sil.train.iters, sil.train.lr) == (2, 10000, 1e-5)
