namespace NameRnn.Model.Network;

/// <summary>
/// A batch of encoded names packed the way PyTorch's PackedSequence is: names sorted by length
/// (longest first, stable), tokens laid out time-major so that step t reads the first
/// <see cref="BatchSizes"/>[t] names. No padding is ever computed on.
/// </summary>
public sealed class PackedNames
{
    /// <summary>Order[i] is the index, in the caller's list, of the i-th name of the packed batch.</summary>
    public int[] Order { get; }
    public long[] Tokens { get; }

    /// <summary>The same names read backwards, in the same layout (a reversed name keeps its length, so its place).</summary>
    public long[] ReversedTokens { get; }

    public int[] BatchSizes { get; }

    /// <summary>Offsets[t] is the packed index of step t's first row: the sum of the batch sizes before it.</summary>
    public int[] Offsets { get; }

    /// <summary>
    /// MirrorIndex[k] is the packed index of the same name's letter at the mirrored position: for
    /// packed index k = (step t, name i), the index of (step length_i − 1 − t, name i). It maps rows
    /// computed over <see cref="ReversedTokens"/> to reading order and back.
    /// </summary>
    public long[] MirrorIndex { get; }

    public int Count => Order.Length;

    private PackedNames(int[] order, long[] tokens, long[] reversedTokens, int[] batchSizes, int[] offsets, long[] mirrorIndex)
    {
        Offsets = offsets;
        Order = order;
        Tokens = tokens;
        ReversedTokens = reversedTokens;
        BatchSizes = batchSizes;
        MirrorIndex = mirrorIndex;
    }

    public static PackedNames Pack(IReadOnlyList<int[]> encoded)
    {
        if (encoded.Count == 0) throw new ArgumentException("a batch needs at least one name", nameof(encoded));
        var order = Enumerable.Range(0, encoded.Count).OrderByDescending(i => encoded[i].Length).ToArray();
        var longest = encoded[order[0]].Length;
        if (encoded[order[^1]].Length == 0) throw new ArgumentException("a name in the batch is empty", nameof(encoded));
        var batchSizes = new int[longest];
        var total = 0;
        for (var t = 0; t < longest; t++)
        {
            var n = 0;
            while (n < order.Length && encoded[order[n]].Length > t) n++;
            batchSizes[t] = n;
            total += n;
        }
        var tokens = new long[total];
        var reversed = new long[total];
        var mirror = new long[total];
        var offsets = new int[longest];
        for (var t = 1; t < longest; t++) offsets[t] = offsets[t - 1] + batchSizes[t - 1];
        var k = 0;
        for (var t = 0; t < longest; t++)
            for (var i = 0; i < batchSizes[t]; i++)
            {
                var name = encoded[order[i]];
                tokens[k] = name[t];
                mirror[k] = offsets[name.Length - 1 - t] + i;
                reversed[k++] = name[name.Length - 1 - t];
            }
        return new PackedNames(order, tokens, reversed, batchSizes, offsets, mirror);
    }

    /// <summary>The packed index of every name's last letter, in sorted order: name i ends at the last step that still has it.</summary>
    public long[] LastRows()
    {
        var sizes = BatchSizes;
        var rows = new long[Count];
        for (var t = 0; t < sizes.Length; t++)
            for (var i = t + 1 < sizes.Length ? sizes[t + 1] : 0; i < sizes[t]; i++) rows[i] = Offsets[t] + i;
        return rows;
    }

    /// <summary>For every packed row after the first step, in packed order, the packed index of the same name's row one step before.</summary>
    public long[] PreviousRows()
    {
        var sizes = BatchSizes;
        var rows = new long[Tokens.Length - sizes[0]];
        for (int t = 1, k = 0; t < sizes.Length; t++)
            for (var i = 0; i < sizes[t]; i++) rows[k++] = Offsets[t - 1] + i;
        return rows;
    }
}
