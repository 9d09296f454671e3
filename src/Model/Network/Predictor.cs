using NameRnn.Model.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>Class probabilities for normalised names, batched, in eval mode under no-grad.</summary>
public sealed class Predictor : IDisposable
{
    private const int BatchSize = 1024;
    private readonly NameClassifier _module;

    public Predictor(ModelConfig config, float[] parameters)
    {
        _module = new NameClassifier(config);
        Load(parameters);
    }

    public ModelConfig Config => _module.Config;

    public void Load(float[] parameters)
    {
        ParameterIo.Load(_module, parameters);
        _module.eval();
    }

    /// <summary>Softmax probabilities, one row per name, in the order given.</summary>
    public float[][] Probabilities(IReadOnlyList<string> normalisedNames)
    {
        var result = new float[normalisedNames.Count][];
        using var noGrad = torch.no_grad();
        for (var start = 0; start < normalisedNames.Count; start += BatchSize)
        {
            using var scope = torch.NewDisposeScope();
            var count = Math.Min(BatchSize, normalisedNames.Count - start);
            var packed = PackedNames.Pack(Enumerable.Range(start, count).Select(i => Alphabet.Encode(normalisedNames[i])).ToList());
            var probabilities = ParameterIo.ToFloats(nn.functional.softmax(_module.forward(packed), 1));
            var classes = _module.Config.Classes;
            for (var row = 0; row < count; row++)
                result[start + packed.Order[row]] = probabilities.AsSpan(row * classes, classes).ToArray();
        }
        return result;
    }

    public static int ArgMax(float[] values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    public void Dispose() => _module.Dispose();
}
