namespace NameRnn.Model.Training;

public sealed record ClassMetrics(string Label, double Precision, double Recall, double F1, int Support);

/// <summary>Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows true, columns predicted).</summary>
public sealed record ClassificationReport(double Accuracy, double MacroF1, IReadOnlyList<ClassMetrics> Classes, int[][] Confusion, int Count)
{
    public static ClassificationReport Compute(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, IReadOnlyList<string> labels)
    {
        if (truth.Count != predicted.Count) throw new ArgumentException("truth and predictions differ in length");
        var k = labels.Count;
        var confusion = Enumerable.Range(0, k).Select(_ => new int[k]).ToArray();
        var correct = 0;
        for (var i = 0; i < truth.Count; i++)
        {
            confusion[truth[i]][predicted[i]]++;
            if (truth[i] == predicted[i]) correct++;
        }
        var classes = new List<ClassMetrics>(k);
        for (var c = 0; c < k; c++)
        {
            var tp = confusion[c][c];
            var support = confusion[c].Sum();
            var predictedAsC = confusion.Sum(row => row[c]);
            var fp = predictedAsC - tp;
            var fn = support - tp;
            var precision = predictedAsC == 0 ? 0 : (double)tp / predictedAsC;
            var recall = support == 0 ? 0 : (double)tp / support;
            var f1 = 2 * tp + fp + fn == 0 ? 0 : 2.0 * tp / (2 * tp + fp + fn);
            classes.Add(new ClassMetrics(labels[c], precision, recall, f1, support));
        }
        var accuracy = truth.Count == 0 ? 0 : (double)correct / truth.Count;
        return new ClassificationReport(accuracy, classes.Average(c => c.F1), classes, confusion, truth.Count);
    }
}
