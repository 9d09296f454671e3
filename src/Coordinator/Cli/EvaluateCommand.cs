using NameRnn.Worker.Hosting;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NameRnn.Coordinator.Training;
using NameRnn.Model.Data;
using NameRnn.Model.Training;
using Serilog;
using TorchSharp;

namespace NameRnn.Coordinator.Cli;

/// <summary><c>evaluate</c>: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of a saved model.</summary>
public static class EvaluateCommand
{
    public static async Task<int> RunAsync(EvaluateSettings settings, TextWriter stdout, ILogger log)
    {
        var model = ModelStore.Load(settings.Model!);
        var dataPath = await DataLocator.ResolveAsync(settings.Data, settings.DataDir, settings.DataUrl, log);
        var data = NamesData.Load(dataPath);
        if (!data.Labels.SequenceEqual(model.Labels))
            throw new DataException($"the languages of {dataPath} ({string.Join(", ", data.Labels)}) differ from the model's ({string.Join(", ", model.Labels)})");
        var split = settings.Split switch
        {
            "train" => Split.Train,
            "validation" => Split.Validation,
            _ => Split.Test,
        };
        var pairs = data.SplitOf(split);
        torch.set_num_threads(1);
        using var evaluator = new Evaluator(model.Config, model.Labels);
        var (loss, report) = evaluator.Evaluate(model.Parameters, pairs);
        if (settings.Json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                split = settings.Split,
                names = report.Count,
                loss,
                accuracy = report.Accuracy,
                macro_f1 = report.MacroF1,
                per_class = report.Classes,
                labels = model.Labels,
                confusion = report.Confusion,
            }, Json.Indented));
            return 0;
        }
        stdout.Write(Format(settings.Split, loss, report));
        return 0;
    }

    public static string Format(string split, double loss, ClassificationReport report)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(inv, $"{split}: {report.Count} names, accuracy {report.Accuracy:F4}, macro-F1 {report.MacroF1:F4}, loss {loss:F4}");
        sb.AppendLine();
        sb.AppendLine(inv, $"{"language",-12} {"precision",9} {"recall",9} {"F1",9} {"support",8}");
        foreach (var c in report.Classes)
            sb.AppendLine(inv, $"{c.Label,-12} {c.Precision,9:F4} {c.Recall,9:F4} {c.F1,9:F4} {c.Support,8}");
        sb.AppendLine();
        sb.AppendLine("confusion matrix (rows: true language, columns: predicted, in the order above)");
        foreach (var (row, c) in report.Confusion.Zip(report.Classes))
            sb.AppendLine(inv, $"{c.Label,-12} {string.Join(" ", row.Select(v => v.ToString(inv).PadLeft(4)))}");
        return sb.ToString();
    }
}
