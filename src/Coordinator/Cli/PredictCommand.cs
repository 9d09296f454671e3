using NameRnn.Worker.Hosting;
using System.Globalization;
using System.Text.Json;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using TorchSharp;

namespace NameRnn.Coordinator.Cli;

/// <summary><c>predict</c>: the top K languages of each name, like the tutorial's predict.py.</summary>
public static class PredictCommand
{
    public sealed record LanguageProbability(string Language, double Probability);
    public sealed record NamePrediction(string Name, IReadOnlyList<LanguageProbability> Predictions);

    public static int Run(PredictSettings settings, IReadOnlyList<string> names, TextWriter stdout)
    {
        if (names.Count == 0) throw new UsageException("predict needs at least one NAME after the options");
        var normalised = names.Select(name =>
        {
            var n = Alphabet.Normalise(name.Trim());
            if (n.Length == 0)
                throw new UsageException($"name '{name}' has no letters after normalisation: expected letters a-z, A-Z (accents are dropped), space or .,;'");
            return n;
        }).ToList();
        var model = ModelStore.Load(settings.Model!);
        torch.set_num_threads(1);
        using var predictor = new Predictor(model.Config, model.Parameters);
        var probabilities = predictor.Probabilities(normalised);
        var top = Math.Min(settings.Top, model.Labels.Count);
        var predictions = names.Select((name, i) => new NamePrediction(name,
            probabilities[i].Select((p, c) => new LanguageProbability(model.Labels[c], Math.Round(p, 6)))
                .OrderByDescending(x => x.Probability).ThenBy(x => x.Language, StringComparer.Ordinal)
                .Take(top).ToList())).ToList();
        if (settings.Json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(predictions, Json.Indented));
            return 0;
        }
        foreach (var prediction in predictions)
        {
            stdout.WriteLine($"> {prediction.Name}");
            foreach (var p in prediction.Predictions)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {p.Probability,6:P1}  {p.Language}"));
        }
        return 0;
    }
}
