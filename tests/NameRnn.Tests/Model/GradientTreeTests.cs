using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Tests.Model;

/// <summary>
/// The fixed pairwise order in which a step's micro-batch gradients are added: whoever adds which
/// block, the bits are those of one process adding every micro-batch.
/// </summary>
public class GradientTreeTests
{
    /// <summary>Gradients of a few values over a wide range of magnitudes and signs, so that the order of addition shows in the bits.</summary>
    private static MicroBatchGradients[] Parts(int count, int seed, int values = 5)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => new MicroBatchGradients(
            random.NextDouble() * Math.Pow(10, random.Next(-3, 9)) * (random.Next(2) * 2 - 1),
            random.Next(1, 40),
            Enumerable.Range(0, values).Select(_ => (float)(random.NextDouble() * Math.Pow(10, random.Next(-8, 9)) * (random.Next(2) * 2 - 1))).ToArray(),
            random.Next(0, 40))).ToArray();
    }

    /// <summary>An independent scalar reference: left part the largest power of two below the range's size, found by doubling.</summary>
    private static (double Loss, float[] Values) Reference(MicroBatchGradients[] parts, int lo, int hi)
    {
        if (hi - lo == 1) return (parts[lo].LossSum, parts[lo].Gradients);
        var p = 1;
        while (p * 2 < hi - lo) p *= 2;
        var (leftLoss, left) = Reference(parts, lo, lo + p);
        var (rightLoss, right) = Reference(parts, lo + p, hi);
        return (leftLoss + rightLoss, left.Zip(right, (a, b) => a + b).ToArray());
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Property(MaxTest = 300)]
    public void Any_cut_into_units_adds_to_the_same_bits_as_every_micro_batch_at_once(PositiveInt n, PositiveInt workers, PositiveInt largest, int seed)
    {
        var count = 1 + n.Get % 40;
        var parts = Parts(count, seed);
        var whole = GradientTree.Reduce(parts);
        var (loss, values) = Reference(parts, 0, count);
        Assert.Equal(Bits(values), Bits(whole.Gradients));
        Assert.Equal(BitConverter.DoubleToInt64Bits(loss), BitConverter.DoubleToInt64Bits(whole.LossSum));
        Assert.Equal(parts.Sum(p => p.Count), whole.Count);
        Assert.Equal(parts.Sum(p => p.Correct), whole.Correct);

        var units = GradientTree.Units(count, 1 + workers.Get % 9, 1 + largest.Get % 20);
        var blocks = units.Select(u => new GradientBlock(u.First, u.MicroBatches, GradientTree.Reduce(parts[u.First..(u.First + u.MicroBatches)]))).ToList();
        var combined = GradientTree.Combine(blocks.OrderBy(_ => seed ^ _.First).ToList(), count);
        Assert.Equal(Bits(whole.Gradients), Bits(combined.Gradients));
        Assert.Equal(BitConverter.DoubleToInt64Bits(whole.LossSum), BitConverter.DoubleToInt64Bits(combined.LossSum));
    }

    [Property(MaxTest = 300)]
    public void Units_cover_the_step_in_order_with_one_for_every_worker_when_there_are_enough(PositiveInt n, PositiveInt workers, PositiveInt largest)
    {
        var (count, live, most) = (1 + n.Get % 64, 1 + workers.Get % 9, 1 + largest.Get % 20);
        var units = GradientTree.Units(count, live, most);
        Assert.Equal(Enumerable.Range(0, count), units.SelectMany(u => Enumerable.Range(u.First, u.MicroBatches)));
        var size = units[0].MicroBatches;
        Assert.True((size & (size - 1)) == 0 && size <= most, $"unit size {size}");
        Assert.All(units, u => Assert.Equal(0, u.First % size));
        Assert.True(units.Count >= Math.Min(count, live), $"{units.Count} units for {live} workers and {count} micro-batches");
    }

    [Fact]
    public void One_or_two_micro_batches_add_as_they_did_one_by_one_onto_zeros()
    {
        // Before units of work, the coordinator added the sums one by one onto zeros: (0 + a) + b.
        // The tree gives a + b, and the step adds that onto zeros: 0 + (a + b). Same bits, signed zeros included.
        float[] edge = [0f, -0f, 1f, -1f, 1e-45f, -1e-45f, 3.4e38f, -3.4e38f, 1e8f, 5f];
        foreach (var a in edge)
            foreach (var b in edge)
            {
                var tree = GradientTree.Reduce([new MicroBatchGradients(a, 1, [a]), new MicroBatchGradients(b, 1, [b])]);
                Assert.Equal(BitConverter.SingleToInt32Bits((0f + a) + b), BitConverter.SingleToInt32Bits(0f + tree.Gradients[0]));
                Assert.Equal(BitConverter.DoubleToInt64Bits((0.0 + a) + b), BitConverter.DoubleToInt64Bits(0.0 + tree.LossSum));
            }
    }

    [Fact]
    public void A_missing_micro_batch_or_a_block_off_the_tree_is_refused()
    {
        var parts = Parts(4, 1);
        GradientBlock One(int i) => new(i, 1, parts[i]);
        var missing = Assert.Throws<ArgumentException>(() => GradientTree.Combine([One(0), One(1), One(3)], 4));
        Assert.Contains("micro-batch 2", missing.Message);
        var offTree = new GradientBlock(1, 2, GradientTree.Reduce(parts[1..3]));
        Assert.Throws<ArgumentException>(() => GradientTree.Combine([One(0), offTree, One(3)], 4));
    }
}
