using NameRnn.Coordinator.Training;
using NameRnn.Model.Training;
using ScottPlot;

namespace NameRnn.Coordinator.Runs;

/// <summary>The run's pictures, drawn to PNG without a display: loss and accuracy curves, and the confusion matrix.</summary>
public static class Pictures
{
    public const string Loss = "loss.png";
    public const string Accuracy = "accuracy.png";
    public const string Confusion = "confusion.png";
    public const int Width = 1000;
    public const int Height = 700;

    public static IReadOnlyList<string> Write(string runDirectory, IReadOnlyList<EpochSummary> epochs, ClassificationReport test)
    {
        var x = epochs.Select(e => (double)e.Epoch).ToArray();

        var loss = new Plot();
        Line(loss, x, epochs.Select(e => e.TrainLoss), "train loss (weighted, with dropout)");
        Line(loss, x, epochs.Select(e => e.ValidationLoss), "validation loss");
        loss.Title("Loss per epoch");
        loss.XLabel("epoch");
        loss.YLabel("cross-entropy");
        loss.ShowLegend(Alignment.UpperRight);
        loss.SavePng(Path.Combine(runDirectory, Loss), Width, Height);

        var accuracy = new Plot();
        Line(accuracy, x, epochs.Select(e => e.TrainAccuracy), "train accuracy (during the epoch)");
        Line(accuracy, x, epochs.Select(e => e.ValidationAccuracy), "validation accuracy");
        Line(accuracy, x, epochs.Select(e => e.ValidationMacroF1), "validation macro-F1");
        accuracy.Title("Accuracy and macro-F1 per epoch");
        accuracy.XLabel("epoch");
        accuracy.Axes.SetLimitsY(0, 1);
        accuracy.ShowLegend(Alignment.LowerRight);
        accuracy.SavePng(Path.Combine(runDirectory, Accuracy), Width, Height);

        ConfusionMatrix(test).SavePng(Path.Combine(runDirectory, Confusion), Width, Width);
        return [Loss, Accuracy, Confusion];
    }

    private static void Line(Plot plot, double[] x, IEnumerable<double> y, string label)
    {
        var line = plot.Add.Scatter(x, y.ToArray());
        line.LegendText = label;
    }

    /// <summary>Rows: true language; columns: predicted; each row divided by its count.</summary>
    public static Plot ConfusionMatrix(ClassificationReport report)
    {
        var k = report.Confusion.Length;
        var labels = report.Classes.Select(c => c.Label).ToArray();
        var values = new double[k, k];
        for (var r = 0; r < k; r++)
        {
            var total = Math.Max(1, report.Confusion[r].Sum());
            for (var c = 0; c < k; c++) values[r, c] = (double)report.Confusion[r][c] / total;
        }
        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(values);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(heatmap);
        var ticks = Enumerable.Range(0, k).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.SetTicks(ticks, labels);
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Left.SetTicks(ticks, labels.Reverse().ToArray());
        plot.Axes.Bottom.Label.Text = "predicted";
        plot.Axes.Left.Label.Text = "true";
        plot.Title("Confusion matrix on the test split (rows normalised)");
        return plot;
    }
}
