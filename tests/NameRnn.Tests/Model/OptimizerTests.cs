using NameRnn.Model.Training;
using TorchSharp;
using TorchSharp.Modules;

namespace NameRnn.Tests.Model;

/// <summary>The coordinator's optimizers against TorchSharp's own (libtorch's), and the SIMD loops against scalar ones.</summary>
public class OptimizerTests
{
    private static float[] Random(int count, int seed, float scale = 1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>Runs TorchSharp's optimizer over the same gradients and returns the parameters after each step.</summary>
    private static List<float[]> Reference(float[] start, IReadOnlyList<float[]> gradients, Func<Parameter, torch.optim.Optimizer> make)
    {
        using var scope = torch.NewDisposeScope();
        var parameter = new Parameter(torch.tensor(start));
        var optimizer = make(parameter);
        var states = new List<float[]>();
        foreach (var g in gradients)
        {
            parameter.grad = torch.tensor(g);
            optimizer.step();
            states.Add(parameter.data<float>().ToArray());
        }
        return states;
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 + 1e-5 * Math.Abs(expected[i]),
                $"{what}, value {i}: libtorch {expected[i]}, NameRnn {actual[i]}");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void Adam_follows_libtorch_s_AdamW_step_by_step(double weightDecay)
    {
        const int count = 1_003; // not a multiple of any SIMD width: the scalar tail runs too
        var start = Random(count, 1);
        var gradients = Enumerable.Range(0, 6).Select(k => Random(count, 10 + k, 0.1f)).ToList();
        var expected = Reference(start, gradients, p => torch.optim.AdamW([p], lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: weightDecay));
        var adam = new AdamOptimizer(count, 0.9, 0.999, 1e-8, weightDecay, null);
        var parameters = (float[])start.Clone();
        for (var k = 0; k < gradients.Count; k++)
        {
            adam.Step(parameters, gradients[k], 0.01);
            AssertClose(expected[k], parameters, $"step {k + 1}");
        }
    }

    [Theory]
    [InlineData(0.9, 0.0)]
    [InlineData(0.9, 0.001)]
    [InlineData(0.0, 0.0)]
    public void Sgd_follows_libtorch_s_SGD_step_by_step(double momentum, double weightDecay)
    {
        const int count = 517;
        var start = Random(count, 2);
        var gradients = Enumerable.Range(0, 5).Select(k => Random(count, 20 + k, 0.1f)).ToList();
        var expected = Reference(start, gradients, p => torch.optim.SGD([p], 0.1, momentum: momentum, weight_decay: weightDecay));
        var sgd = new SgdMomentum(count, momentum, weightDecay, null);
        var parameters = (float[])start.Clone();
        for (var k = 0; k < gradients.Count; k++)
        {
            sgd.Step(parameters, gradients[k], 0.1);
            AssertClose(expected[k], parameters, $"step {k + 1}");
        }
    }

    [Fact]
    public void Simd_loops_give_the_same_bits_as_scalar_loops()
    {
        foreach (var count in Enumerable.Range(0, 40).Append(26_130))
        {
            // Every fifth value a negative zero, which adding to zero turns into a positive one.
            var a = Random(count, count).Select((v, i) => i % 5 == 2 ? -0f : v).ToArray();
            var b = Random(count, count + 1000);
            var newSum = VectorMath.Sum(a, b);
            var scaled = (float[])a.Clone();
            VectorMath.Scale(scaled, 1f / 3);
            var fromZero = new float[count];
            VectorMath.ScaleFromZero(fromZero, a, 1f / 3);
            var inPlace = (float[])a.Clone();
            VectorMath.ScaleFromZero(inPlace, inPlace, 1f / 3);
            for (var i = 0; i < count; i++)
            {
                Assert.Equal(BitConverter.SingleToInt32Bits(a[i] + b[i]), BitConverter.SingleToInt32Bits(newSum[i]));
                Assert.Equal(BitConverter.SingleToInt32Bits(a[i] * (1f / 3)), BitConverter.SingleToInt32Bits(scaled[i]));
                var zeroPlus = 0f;
                zeroPlus += a[i];
                Assert.Equal(BitConverter.SingleToInt32Bits(zeroPlus * (1f / 3)), BitConverter.SingleToInt32Bits(fromZero[i]));
                Assert.Equal(BitConverter.SingleToInt32Bits(zeroPlus * (1f / 3)), BitConverter.SingleToInt32Bits(inPlace[i]));
            }
        }
    }

    [Fact]
    public void All_finite_finds_a_NaN_or_an_infinity_at_any_position()
    {
        var values = Random(37, 3, 1e30f);
        Assert.True(VectorMath.AllFinite(values));
        Assert.True(VectorMath.AllFinite([float.MaxValue, -float.MaxValue, float.Epsilon]));
        for (var i = 0; i < values.Length; i++)
            foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            {
                var copy = (float[])values.Clone();
                copy[i] = bad;
                Assert.False(VectorMath.AllFinite(copy), $"{bad} at {i}");
            }
    }

    /// <summary>The order <see cref="VectorMath.SumOfSquares"/> promises, written out one addition at a time.</summary>
    private static double SumOfSquaresInEights(float[] values)
    {
        var sums = new double[8];
        var whole = values.Length / 8 * 8;
        for (var i = 0; i < whole; i++) sums[i % 8] += (double)values[i] * values[i];
        var sum = ((sums[0] + sums[4]) + (sums[2] + sums[6])) + ((sums[1] + sums[5]) + (sums[3] + sums[7]));
        for (var i = whole; i < values.Length; i++) sum += (double)values[i] * values[i];
        return sum;
    }

    [Fact]
    public void The_sum_of_squares_adds_in_its_fixed_order_and_agrees_with_one_running_sum()
    {
        foreach (var count in Enumerable.Range(0, 40).Append(26_130))
        {
            // Values of very different sizes, so that the order of the additions shows in the bits.
            var values = Random(count, count + 7).Select((v, i) => v * MathF.Pow(10, i % 7 - 3)).ToArray();
            var sum = VectorMath.SumOfSquares(values);
            Assert.Equal(BitConverter.DoubleToInt64Bits(SumOfSquaresInEights(values)), BitConverter.DoubleToInt64Bits(sum));
            var running = values.Aggregate(0.0, (s, v) => s + (double)v * v);
            Assert.True(Math.Abs(sum - running) <= 1e-13 * running, $"{count} values: {sum} against one running sum {running}");
        }
    }
}
