"""care_model.report.plots: the loss curve shows its points when there are few."""
from care_model.report.plots import loss_figure, loss_plot


def test_few_loss_points_are_drawn_as_points_with_their_values():
    training = [(s, 2.0 - 0.01 * s) for s in range(1, 41)]
    fig = loss_figure({"training": training, "validation": [(0, 2.1), (40, 1.6)]}, "loss")
    ax = fig.axes[0]
    train, val = ax.lines
    assert train.get_marker() in ("None", None, "") and val.get_marker() == "o" and val.get_markersize() >= 6
    assert sorted(t.get_text() for t in ax.texts) == ["1.600", "2.100"]   # the two values, written beside
    assert val.get_label() == "validation (2 points)" and val.get_linestyle() == "None"   # two dots, no line
    assert train.get_linestyle() == "-"
    assert loss_plot({"training": training[:3]}, "loss")[:4] == b"\x89PNG"
