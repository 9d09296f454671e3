using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Coordinator.Training;

/// <summary>Loss and classification report of given parameters on a split (no-grad, eval mode).</summary>
public sealed class Evaluator(ModelConfig config, IReadOnlyList<string> labels) : IDisposable
{
    private readonly Predictor _predictor = new(config, new float[config.ParameterCount]);

    public (double Loss, ClassificationReport Report) Evaluate(float[] parameters, IReadOnlyList<LabelledName> split)
    {
        _predictor.Load(parameters);
        var probabilities = _predictor.Probabilities(split.Select(p => p.Name).ToList());
        var loss = 0.0;
        for (var i = 0; i < split.Count; i++)
            loss -= Math.Log(Math.Max(probabilities[i][split[i].Label], 1e-30f));
        var report = ClassificationReport.Compute(split.Select(p => p.Label).ToList(), probabilities.Select(Predictor.ArgMax).ToList(), labels);
        return (split.Count == 0 ? 0 : loss / split.Count, report);
    }

    public void Dispose() => _predictor.Dispose();
}
