using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>The summed gradient of the micro-batches <see cref="First"/> … <see cref="First"/> + <see cref="MicroBatches"/> − 1 of a step.</summary>
public sealed record GradientBlock(int First, int MicroBatches, MicroBatchGradients Sum);

/// <summary>
/// The order in which a step's micro-batch gradients are added: a fixed pairwise tree over the
/// micro-batch indices. A range of n &gt; 1 micro-batches is the sum of its first p (the largest power
/// of two below n) and of the rest, each added the same way. Float addition is not associative, so
/// the order is what makes a run's bits independent of who computed what.
/// <para>
/// The tree's nodes include every aligned block [k·2^j, min((k+1)·2^j, n)), so a worker that is given
/// such a block (a unit of work, see <see cref="Units"/>) can add its micro-batches itself and send one
/// sum; the coordinator adds the blocks' sums up the rest of the tree. Whatever the number of workers
/// and the block size, every addition is the same, and so is the result: the same bits as one process
/// computing every micro-batch. With one or two micro-batches per step it is the same as adding them in
/// index order.
/// </para>
/// </summary>
public static class GradientTree
{
    /// <summary>Where a range of <paramref name="count"/> &gt; 1 micro-batches splits: the largest power of two below it.</summary>
    public static int Split(int count)
    {
        if (count < 2) throw new ArgumentOutOfRangeException(nameof(count), count, "only a range of two or more micro-batches splits");
        return 1 << (31 - int.LeadingZeroCount(count - 1));
    }

    /// <summary>
    /// The units of work of a step of <paramref name="microBatches"/> micro-batches for
    /// <paramref name="workers"/> workers: aligned blocks of the largest power of two that still gives
    /// every worker one (one micro-batch each at the least), at most <paramref name="largest"/> long.
    /// Fewer, larger units mean fewer messages; the split never changes the result.
    /// </summary>
    public static IReadOnlyList<(int First, int MicroBatches)> Units(int microBatches, int workers, int largest = int.MaxValue)
    {
        if (microBatches < 1) throw new ArgumentOutOfRangeException(nameof(microBatches), microBatches, "a step has at least one micro-batch");
        var fit = Math.Max(1, Math.Min(largest, microBatches / Math.Max(1, workers)));
        var size = 1 << (31 - int.LeadingZeroCount(fit));
        var units = new List<(int, int)>();
        for (var first = 0; first < microBatches; first += size) units.Add((first, Math.Min(size, microBatches - first)));
        return units;
    }

    /// <summary>The pairwise sum of consecutive micro-batch results (a unit of work: an aligned block of the step's tree).</summary>
    public static MicroBatchGradients Reduce(IReadOnlyList<MicroBatchGradients> inOrder)
    {
        if (inOrder.Count == 0) throw new ArgumentException("nothing to add");
        return Node(0, inOrder.Count, (lo, hi) => hi - lo == 1 ? inOrder[lo] : null);
    }

    /// <summary>
    /// The pairwise sum of a step of <paramref name="microBatches"/> micro-batches from the sums of
    /// blocks that are nodes of its tree and cover it. Throws when a micro-batch is missing or a block
    /// is not a node of the tree.
    /// </summary>
    public static MicroBatchGradients Combine(IReadOnlyList<GradientBlock> blocks, int microBatches)
    {
        var byFirst = new Dictionary<int, GradientBlock>();
        foreach (var block in blocks)
            if (!byFirst.TryAdd(block.First, block))
                throw new ArgumentException($"two blocks start at micro-batch {block.First}");
        var used = 0;
        var sum = Node(0, microBatches, (lo, hi) =>
        {
            if (!byFirst.TryGetValue(lo, out var block) || block.MicroBatches != hi - lo)
            {
                if (hi - lo == 1) throw new ArgumentException($"no gradient for micro-batch {lo} of {microBatches}");
                return null;
            }
            used++;
            return block.Sum;
        });
        if (used != byFirst.Count) throw new ArgumentException($"{byFirst.Count - used} block(s) are not nodes of the tree of {microBatches} micro-batches");
        return sum;
    }

    /// <summary>The sum of the range [lo, hi): given by <paramref name="known"/> when it has it, else left half + right half.</summary>
    private static MicroBatchGradients Node(int lo, int hi, Func<int, int, MicroBatchGradients?> known)
    {
        if (known(lo, hi) is { } given) return given;
        var mid = lo + Split(hi - lo);
        var left = Node(lo, mid, known);
        var right = Node(mid, hi, known);
        if (left.Gradients.Length != right.Gradients.Length)
            throw new ArgumentException($"gradients of {left.Gradients.Length} and {right.Gradients.Length} values");
        var gradients = VectorMath.Sum(left.Gradients, right.Gradients);
        return new MicroBatchGradients(left.LossSum + right.LossSum, left.Count + right.Count, gradients, left.Correct + right.Correct);
    }
}
