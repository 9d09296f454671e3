using System.Globalization;
using System.Text;
using NameRnn.Coordinator.Training;

namespace NameRnn.Coordinator.Runs;

/// <summary>summary.md: what a person reads about a run — configuration, final figures, per-class table, pictures.</summary>
public static class SummaryReport
{
    public static string Render(string runId, IReadOnlyDictionary<string, string> configuration, TrainingCompleted result, IReadOnlyList<string> pictures)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"# Run {runId}");
        sb.AppendLine();
        sb.AppendLine(inv, $"Test accuracy **{result.Test.Accuracy:F4}**, macro-F1 **{result.Test.MacroF1:F4}** with the best-by-validation model (epoch {result.BestEpoch}, validation accuracy {result.BestValidation.Accuracy:F4}, macro-F1 {result.BestValidation.MacroF1:F4}).");
        sb.AppendLine(inv, $"{result.Epochs.Count} epochs, {result.TrainSeconds:F1} s of training, {result.TrainNamesPerSecond:F0} names/s, {result.WorkersSeen} workers.");
        sb.AppendLine();
        sb.AppendLine("## Configuration");
        sb.AppendLine();
        sb.AppendLine("| option | value |");
        sb.AppendLine("|---|---|");
        foreach (var (key, value) in configuration) sb.AppendLine(inv, $"| {key} | {value} |");
        sb.AppendLine();
        sb.AppendLine("## Epochs");
        sb.AppendLine();
        sb.AppendLine("| epoch | train loss | train accuracy | validation loss | validation accuracy | validation macro-F1 | names/s |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var e in result.Epochs)
            sb.AppendLine(inv, $"| {e.Epoch} | {e.TrainLoss:F4} | {e.TrainAccuracy:F4} | {e.ValidationLoss:F4} | {e.ValidationAccuracy:F4} | {e.ValidationMacroF1:F4} | {e.NamesPerSecond:F0} |");
        sb.AppendLine();
        sb.AppendLine("## Test split, per language");
        sb.AppendLine();
        sb.AppendLine("| language | precision | recall | F1 | support |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var c in result.Test.Classes)
            sb.AppendLine(inv, $"| {c.Label} | {c.Precision:F4} | {c.Recall:F4} | {c.F1:F4} | {c.Support} |");
        sb.AppendLine();
        sb.AppendLine("## Pictures");
        sb.AppendLine();
        foreach (var picture in pictures) sb.AppendLine(inv, $"![{Path.GetFileNameWithoutExtension(picture)}]({picture})");
        return sb.ToString();
    }
}
