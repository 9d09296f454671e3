using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// Where one micro-batch's packed rows lie in the packed batch of several micro-batches computed
/// together (<see cref="PackedNames.Pack"/> of all their names, the micro-batches' names in order).
/// </summary>
internal sealed class MergedLayout
{
    private readonly long[] _rows;

    private MergedLayout(long[] rows, long[] names)
    {
        _rows = rows;
        NameRows = names;
        NameIndex = names.Select(n => (int)n).ToArray();
        Rows = torch.tensor(rows, dtype: ScalarType.Int64);
        Names = torch.tensor(names, dtype: ScalarType.Int64);
    }

    /// <summary>Rows[k]: the merged packed index of this micro-batch's own packed row k.</summary>
    public Tensor Rows { get; }

    /// <summary>Names[i]: the merged sorted position of this micro-batch's i-th name in its own sorted order.</summary>
    public Tensor Names { get; }

    /// <summary><see cref="Rows"/> as an array.</summary>
    public long[] RowIndex => _rows;

    /// <summary><see cref="Names"/> as an array.</summary>
    public long[] NameRows { get; }

    /// <summary><see cref="Names"/> as an array of int.</summary>
    public int[] NameIndex { get; }

    /// <summary>The merged packed indices of some of this micro-batch's own packed rows.</summary>
    public Tensor RowsOf(long[] ownRows)
    {
        var rows = new long[ownRows.Length];
        for (var i = 0; i < rows.Length; i++) rows[i] = _rows[ownRows[i]];
        return torch.tensor(rows, dtype: ScalarType.Int64);
    }

    /// <summary>The layout of each of <paramref name="own"/> (each micro-batch packed alone) in <paramref name="merged"/>.</summary>
    public static MergedLayout[] Of(IReadOnlyList<PackedNames> own, PackedNames merged)
    {
        if (own.Sum(p => p.Count) != merged.Count) throw new ArgumentException("the merged batch holds other names than the micro-batches");
        var rank = new int[merged.Count];
        for (var i = 0; i < merged.Count; i++) rank[merged.Order[i]] = i;
        var layouts = new MergedLayout[own.Count];
        var start = 0;
        for (var m = 0; m < own.Count; m++)
        {
            var packed = own[m];
            var names = new long[packed.Count];
            for (var i = 0; i < names.Length; i++) names[i] = rank[start + packed.Order[i]];
            // A name running at step t is running in the merged batch too, at its merged rank among the step's rows.
            var rows = new long[packed.Tokens.Length];
            for (int t = 0, k = 0; t < packed.BatchSizes.Length; t++)
                for (var i = 0; i < packed.BatchSizes[t]; i++) rows[k++] = merged.Offsets[t] + names[i];
            layouts[m] = new MergedLayout(rows, names);
            start += packed.Count;
        }
        return layouts;
    }
}

/// <summary>
/// Matrix products in which each row of the result is the same bits whatever the other rows are:
/// libtorch's CPU matrix product (MKL) computes a product of fewer than <see cref="MinRows"/> rows
/// with another kernel, whose sums round differently (by an ulp or so), so such a product is padded
/// with zero rows. (Measured for 1 to 600 rows, hidden sizes 16 to 512, at any offset in a buffer;
/// a test compares micro-batches computed together and alone.)
/// </summary>
internal static class RowWise
{
    public const int MinRows = 4;

    /// <summary>c = beta · c + a · b, in place; returns c.</summary>
    public static Tensor AddProduct(Tensor c, Tensor a, Tensor b, int beta)
    {
        var n = a.shape[0];
        if (n >= MinRows) return c.addmm_(a, b, beta, 1);
        var paddedA = torch.zeros(MinRows, a.shape[1], dtype: a.dtype);
        paddedA.narrow(0, 0, n).copy_(a);
        var paddedC = torch.zeros(MinRows, c.shape[1], dtype: c.dtype);
        if (beta != 0) paddedC.narrow(0, 0, n).copy_(c);
        paddedC.addmm_(paddedA, b, beta, 1);
        return c.copy_(paddedC.narrow(0, 0, n));
    }
}
