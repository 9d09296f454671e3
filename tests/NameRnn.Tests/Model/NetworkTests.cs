using NameRnn.Model.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Tests.Model;

public class NetworkTests
{
    private static readonly string[] Names = ["Slusarski", "Li", "O'Neal", "Nguyen", "Abl", "Yoshida", "X", "Van der Berg", "Li"];

    [Theory]
    [InlineData("rnn", 128, 0)]
    [InlineData("gru", 16, 0)]
    [InlineData("lstm", 16, 0)]
    [InlineData("rnn", 16, 8)]
    [InlineData("gru", 16, 8)]
    [InlineData("lstm", 16, 8)]
    [InlineData("rnn", 16, 0, true)]
    [InlineData("gru", 16, 8, true)]
    [InlineData("lstm", 16, 0, true)]
    public void Batched_forward_equals_a_one_name_at_a_time_forward(string cell, int hidden, int embedding, bool bidirectional = false)
    {
        var config = ModelConfig.Create(cell, hidden, 18, embedding, bidirectional);
        var parameters = ParameterInit.Create(config, seed: 7);
        var module = new NameClassifier(config);
        ParameterIo.Load(module, parameters);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var packed = PackedNames.Pack(Names.Select(NameRnn.Model.Data.Alphabet.Encode).ToList());
        var logits = module.forward(packed).data<float>().ToArray();
        for (var row = 0; row < Names.Length; row++)
        {
            var expected = ReferenceNetwork.Logits(config, parameters, Names[packed.Order[row]]);
            for (var c = 0; c < 18; c++)
                Assert.True(Math.Abs(expected[c] - logits[row * 18 + c]) < 1e-5,
                    $"{cell}: '{Names[packed.Order[row]]}' class {c}: batched {logits[row * 18 + c]}, one at a time {expected[c]}");
        }
    }

    [Theory]
    [InlineData("rnn", 0)]
    [InlineData("gru", 0)]
    [InlineData("lstm", 0)]
    [InlineData("gru", 4)]
    [InlineData("lstm", 3, true)]
    public void Gradients_agree_with_finite_differences(string cell, int embedding, bool bidirectional = false)
    {
        var config = ModelConfig.Create(cell, 6, 5, embedding, bidirectional);
        var parameters = ParameterInit.Create(config, seed: 3);
        var labels = new[] { 0, 4, 2, 1, 3, 2, 0, 1, 4 };
        var weights = new float[] { 1f, 2f, 0.5f, 1.5f, 1f };

        using var engine = new GradientEngine(config, weights);
        engine.LoadParameters(0, parameters);
        var analytic = engine.Compute(Names, labels);

        var values = parameters.Select(v => (double)v).ToArray();
        var rng = new Random(11);
        var probes = Enumerable.Range(0, 40).Select(_ => rng.Next(values.Length)).Distinct().ToList();
        const double eps = 1e-6;
        foreach (var i in probes)
        {
            var plus = (double[])values.Clone();
            var minus = (double[])values.Clone();
            plus[i] += eps;
            minus[i] -= eps;
            var numeric = (LossInDouble(config, plus, labels, weights) - LossInDouble(config, minus, labels, weights)) / (2 * eps);
            Assert.True(Math.Abs(numeric - analytic.Gradients[i]) <= 1e-4 + 1e-3 * Math.Abs(numeric),
                $"{cell} parameter {i}: autograd {analytic.Gradients[i]}, finite difference {numeric}");
        }
        Assert.Equal(LossInDouble(config, values, labels, weights), analytic.LossSum, 3);
    }

    /// <summary>The weighted cross-entropy sum of the batch, computed in float64 with the same module.</summary>
    private static double LossInDouble(ModelConfig config, double[] values, int[] labels, float[] weights)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var module = new NameClassifier(config, ScalarType.Float64);
        var offset = 0L;
        foreach (var p in module.OrderedParameters)
        {
            var n = p.numel();
            p.copy_(torch.tensor(values.AsSpan((int)offset, (int)n).ToArray(), dtype: ScalarType.Float64).view(p.shape));
            offset += n;
        }
        var packed = PackedNames.Pack(Names.Select(NameRnn.Model.Data.Alphabet.Encode).ToList());
        var logits = module.forward(packed);
        var total = 0.0;
        var logProbabilities = nn.functional.log_softmax(logits, 1).data<double>().ToArray();
        for (var row = 0; row < Names.Length; row++)
        {
            var label = labels[packed.Order[row]];
            total -= weights[label] * logProbabilities[row * config.Classes + label];
        }
        return total;
    }
}
