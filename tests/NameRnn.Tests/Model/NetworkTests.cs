using NameRnn.Model.Network;
using NameRnn.Model.Training;
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
    [InlineData("rnn", 16, 0, false, Poolings.LastMeanMax)]
    [InlineData("gru", 16, 8, true, Poolings.LastMeanMax)]
    [InlineData("gru", 16, 0, false, Poolings.LastMeanMax)]
    [InlineData("lstm", 16, 8, true, Poolings.LastMeanMax)]
    [InlineData("gru", 16, 8, true, Poolings.Last, 2)]
    [InlineData("gru", 12, 0, true, Poolings.LastMeanMax, 3)]
    [InlineData("lstm", 16, 8, false, Poolings.LastMeanMax, 2)]
    [InlineData("rnn", 16, 0, true, Poolings.Last, 2)]
    public void Batched_forward_equals_a_one_name_at_a_time_forward(string cell, int hidden, int embedding, bool bidirectional = false, string pooling = Poolings.Last, int layers = 1)
    {
        var config = ModelConfig.Create(cell, hidden, 18, embedding, bidirectional, pooling, layers);
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
    [InlineData("gru", 4, true, Poolings.LastMeanMax)]
    [InlineData("lstm", 0, false, Poolings.LastMeanMax)]
    [InlineData("gru", 4, true, Poolings.Last, 0.2)]
    [InlineData("rnn", 0, false, Poolings.LastMeanMax, 0.1)]
    [InlineData("gru", 4, true, Poolings.LastMeanMax, 0.1, 2)]
    [InlineData("lstm", 0, true, Poolings.Last, 0, 2)]
    public void Gradients_agree_with_finite_differences(string cell, int embedding, bool bidirectional = false, string pooling = Poolings.Last, double smoothing = 0, int layers = 1)
    {
        var config = ModelConfig.Create(cell, 6, 5, embedding, bidirectional, pooling, layers);
        var parameters = ParameterInit.Create(config, seed: 3);
        var labels = new[] { 0, 4, 2, 1, 3, 2, 0, 1, 4 };
        var weights = new float[] { 1f, 2f, 0.5f, 1.5f, 1f };

        using var engine = new GradientEngine(config, weights, labelSmoothing: smoothing);
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
            var numeric = (LossInDouble(config, plus, labels, weights, smoothing) - LossInDouble(config, minus, labels, weights, smoothing)) / (2 * eps);
            Assert.True(Math.Abs(numeric - analytic.Gradients[i]) <= 1e-4 + 1e-3 * Math.Abs(numeric),
                $"{cell} parameter {i}: autograd {analytic.Gradients[i]}, finite difference {numeric}");
        }
        Assert.Equal(LossInDouble(config, values, labels, weights, smoothing), analytic.LossSum, 3);
    }

    /// <summary>
    /// The seed's model is differentiated by hand (no autograd through the recurrence); with dropout,
    /// label smoothing and class weights, its loss, hits and every gradient value agree with autograd
    /// through the module's forward pass, which draws the same dropout masks.
    /// </summary>
    [Theory]
    [InlineData(0.0, 0.0, false)]
    [InlineData(0.1, 0.0, true)]
    [InlineData(0.3, 0.1, true)]
    [InlineData(0.2, 0.0, true, true)]
    public void Elman_gradients_by_hand_equal_autograd(double dropout, double smoothing, bool weighted, bool oneLetterNames = false)
    {
        var config = ModelConfig.Create(Cells.Rnn, 24, 5);
        var parameters = ParameterInit.Create(config, seed: 5);
        // One-letter names only: a single step, no recurrence, so W's gradient is zero on both sides.
        var names = oneLetterNames ? ["X", "a", "Q", "z"] : Names.Concat(["Abe", "Zhang", "Kowalczyk", "Ng"]).ToArray();
        var labels = names.Select((_, i) => i * 3 % 5).ToArray();
        var weights = weighted ? new float[] { 1f, 2f, 0.5f, 1.5f, 1f } : null;
        using var byHand = new GradientEngine(config, weights, dropout, smoothing);
        using var autograd = new GradientEngine(config, weights, dropout, smoothing, autograd: true);
        byHand.LoadParameters(0, parameters);
        autograd.LoadParameters(0, parameters);
        var expected = autograd.Compute(names, labels, noiseSeed: 42);
        var actual = byHand.Compute(names, labels, noiseSeed: 42);

        Assert.Equal(expected.Correct, actual.Correct);
        Assert.Equal(expected.LossSum, actual.LossSum, 5);
        var offset = 0;
        foreach (var (name, shape) in config.ParameterShapes())
        {
            var n = (int)shape.Aggregate(1L, (a, b) => a * b);
            // Every block has gradient to compare (a block left at zero would agree vacuously).
            if (!(oneLetterNames && name == "W"))
                Assert.True(expected.Gradients.AsSpan(offset, n).ToArray().Any(g => Math.Abs(g) > 1e-4), $"{name}: no gradient");
            for (var i = offset; i < offset + n; i++)
                Assert.True(Math.Abs(expected.Gradients[i] - actual.Gradients[i]) <= 1e-5 + 1e-4 * Math.Abs(expected.Gradients[i]),
                    $"{name}[{i - offset}]: by hand {actual.Gradients[i]}, autograd {expected.Gradients[i]}");
            offset += n;
        }
    }

    /// <summary>
    /// A label outside the model's classes (a malformed unit of work from another node) is refused with
    /// an error that says so, by the hand-written path as by autograd, before anything is computed.
    /// </summary>
    [Theory]
    [InlineData(false, 5)]
    [InlineData(false, -1)]
    [InlineData(true, 5)]
    public void A_label_outside_the_classes_is_refused(bool autograd, int label)
    {
        var config = ModelConfig.Create(Cells.Rnn, 8, 5);
        using var engine = new GradientEngine(config, null, autograd: autograd);
        engine.LoadParameters(0, ParameterInit.Create(config, seed: 1));
        var error = Assert.Throws<ArgumentException>(() => engine.ComputeMany([new MicroBatch(0, ["Abe", "Li"], [0, 1], 0), new MicroBatch(1, ["Ng", "Zhang"], [2, label], 0)]));
        Assert.Contains($"label {label} is not one of the model's 5 classes", error.Message);
    }

    /// <summary>
    /// A worker computes its micro-batches in one pass (<see cref="GradientEngine.ComputeMany"/>); each
    /// must come out the same bits as computed alone, or the result would depend on how many workers
    /// share a step. Real names in micro-batches of 32, 7 and 2 (a late letter step of a small one has
    /// fewer than 4 rows, where libtorch's matrix product would round differently unpadded), with
    /// dropout, label smoothing and class weights; hidden sizes 128, 100 (rows not a multiple of the
    /// vector width) and 512 (the matrix product adds in more than one block).
    /// </summary>
    [Theory]
    [InlineData(128, 0.1, 0.0)]
    [InlineData(100, 0.3, 0.1)]
    [InlineData(128, 0.0, 0.0)]
    [InlineData(512, 0.1, 0.0)]
    public void Micro_batches_computed_together_equal_each_computed_alone(int hidden, double dropout, double smoothing)
    {
        torch.set_num_threads(1);
        var data = NameRnn.Model.Data.NamesData.Load(TestData.NamesFolder);
        var train = data.SplitOf(NameRnn.Model.Data.Split.Train);
        var config = ModelConfig.Create(Cells.Rnn, hidden, data.Labels.Count);
        var weights = TrainingRun.ClassWeights(train, config.Classes, 0.5);
        using var engine = new GradientEngine(config, weights, dropout, smoothing);
        engine.LoadParameters(0, ParameterInit.Create(config, seed: 9));
        // The longest names of the training split in small micro-batches, among ordinary ones.
        var longest = train.OrderByDescending(p => p.Name.Length).Take(9).ToList();
        var parts = new[] { train.Skip(100).Take(32), longest.Take(7), train.Skip(300).Take(32), longest.Skip(7).Take(2), train.Skip(500).Take(32) }
            .Select((p, i) => new MicroBatch(i, p.Select(x => x.Name).ToArray(), p.Select(x => x.Label).ToArray(), NoiseSeed: 1000 + i)).ToList();

        var together = engine.ComputeMany(parts);
        for (var i = 0; i < parts.Count; i++)
        {
            var alone = engine.Compute(parts[i].Names, parts[i].Labels, parts[i].NoiseSeed);
            Assert.Equal(alone.Count, together[i].Count);
            Assert.Equal(alone.Correct, together[i].Correct);
            Assert.Equal(alone.LossSum, together[i].LossSum);
            var differing = Enumerable.Range(0, alone.Gradients.Length).Count(k => BitConverter.SingleToInt32Bits(alone.Gradients[k]) != BitConverter.SingleToInt32Bits(together[i].Gradients[k]));
            Assert.True(differing == 0, $"micro-batch {i}: {differing} of {alone.Gradients.Length} gradient values differ from the micro-batch computed alone");
        }
    }

    /// <summary>
    /// Dropout masks: about the rate's share dropped (within five standard deviations of the binomial),
    /// the rest scaled by 1 / (1 − rate) so that the expected value is kept, the same mask for the same
    /// seed (whoever computes the micro-batch) and another for another seed or the next draw.
    /// </summary>
    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void Dropout_masks_drop_the_rate_and_repeat_for_a_seed(double rate)
    {
        using var scope = torch.NewDisposeScope();
        var shape = torch.zeros(500, 201);
        const int n = 500 * 201;
        float[] Draw(long seed, int draws = 1)
        {
            var dropout = new Dropout(rate, seed);
            var mask = dropout.Mask(shape);
            for (var i = 1; i < draws; i++) mask = dropout.Mask(shape);
            Assert.Equal(shape.shape, mask.shape);
            return mask.data<float>().ToArray();
        }
        var first = Draw(9);
        var dropped = first.Count(v => v == 0);
        Assert.True(Math.Abs(dropped - rate * n) < 5 * Math.Sqrt(n * rate * (1 - rate)), $"{dropped} of {n} dropped at rate {rate}");
        Assert.All(first.Where(v => v != 0), v => Assert.Equal(1 / (1 - rate), v, 5));
        Assert.Equal(first, Draw(9));
        Assert.NotEqual(first, Draw(10));
        Assert.NotEqual(first, Draw(9, draws: 2));
    }

    /// <summary>
    /// Mask values from the generator's draws one by one, as the definition reads: each 64-bit draw of
    /// SplitMix64 gives two 32-bit uniforms (low half first); a value is dropped (0) when its uniform is
    /// below rate · 2^32, else kept as 1 / (1 − rate). Successive masks continue the same sequence; the
    /// sizes cover the eight-draws-at-a-time path, its remainder, an odd count and a single value.
    /// </summary>
    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void Dropout_masks_are_the_generators_draws_in_order(double rate)
    {
        using var scope = torch.NewDisposeScope();
        const long seed = 12345;
        var dropout = new Dropout(rate, seed);
        var generator = new SplitMix64(unchecked((ulong)seed));
        var threshold = rate * 4294967296.0;
        var kept = (float)(1.0 / (1.0 - rate));
        foreach (var shape in new long[][] { [500, 201], [3, 5], [16, 1], [1, 1], [7, 128], [33, 16] })
        {
            var mask = dropout.Mask(shape, ScalarType.Float32).data<float>().ToArray();
            var expected = new float[mask.Length];
            for (var i = 0; i < expected.Length; i += 2)
            {
                var draw = generator.NextUInt64();
                expected[i] = (draw & 0xFFFFFFFFUL) < threshold ? 0f : kept;
                if (i + 1 < expected.Length) expected[i + 1] = (draw >> 32) < threshold ? 0f : kept;
            }
            Assert.Equal(expected, mask);
        }
    }

    /// <summary>
    /// The weighted cross-entropy sum of the batch, computed in float64 with the same module; with
    /// label smoothing ε the target is 1 − ε on the label plus ε / classes on every class.
    /// </summary>
    private static double LossInDouble(ModelConfig config, double[] values, int[] labels, float[] weights, double smoothing)
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
            var target = Enumerable.Range(0, config.Classes).Select(c => smoothing / config.Classes + (c == label ? 1 - smoothing : 0));
            total -= weights[label] * target.Select((q, c) => q * logProbabilities[row * config.Classes + c]).Sum();
        }
        return total;
    }

    [Fact]
    public void Tensor_values_come_out_in_row_major_order_also_from_a_view()
    {
        using var scope = torch.NewDisposeScope();
        // 0, 1, …, 11 as 3 × 4; its transpose is a view with other strides: element (i, j) is 4 j + i.
        var values = Enumerable.Range(0, 12).Select(v => (float)v).ToArray();
        var matrix = torch.tensor(values).reshape(3, 4);
        Assert.Equal(values, ParameterIo.ToFloats(matrix));
        var expected = Enumerable.Range(0, 4).SelectMany(i => Enumerable.Range(0, 3).Select(j => (float)(4 * j + i))).ToArray();
        Assert.Equal(expected, ParameterIo.ToFloats(matrix.t()));
        Assert.Throws<ArgumentException>(() => ParameterIo.ToFloats(torch.tensor(new long[] { 1, 2 })));
    }
}
