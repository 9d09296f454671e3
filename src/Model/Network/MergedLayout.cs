using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// Where one micro-batch's packed rows lie in the packed batch of several micro-batches computed
/// together (<see cref="PackedNames.Pack"/> of all their names, the micro-batches' names in order).
/// </summary>
internal sealed class MergedLayout
{
    private MergedLayout(long[] rows, long[] names)
    {
        RowIndex = rows;
        NameRows = names;
    }

    /// <summary>RowIndex[k]: the merged packed index of this micro-batch's own packed row k.</summary>
    public long[] RowIndex { get; }

    /// <summary>NameRows[i]: the merged sorted position of this micro-batch's i-th name in its own sorted order.</summary>
    public long[] NameRows { get; }

    /// <summary><see cref="RowIndex"/> as a tensor (made when first asked for).</summary>
    public Tensor Rows => field ??= torch.tensor(RowIndex, dtype: ScalarType.Int64);

    /// <summary><see cref="NameRows"/> as a tensor (made when first asked for).</summary>
    public Tensor Names => field ??= torch.tensor(NameRows, dtype: ScalarType.Int64);

    /// <summary>The merged packed indices of some of this micro-batch's own packed rows.</summary>
    public Tensor RowsOf(long[] ownRows)
    {
        var rows = new long[ownRows.Length];
        for (var i = 0; i < rows.Length; i++) rows[i] = RowIndex[ownRows[i]];
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
/// with another kernel, whose sums round differently (by an ulp or so), so such a product is computed
/// over <see cref="MinRows"/> rows and the extra rows of the result are dropped. (Measured for 1 to 600
/// rows, hidden sizes 16 to 512, at any offset in a buffer; a test compares micro-batches computed
/// together and alone.)
/// </summary>
internal sealed class RowWise
{
    public const int MinRows = 4;

    private Tensor? _scratch;

    /// <summary>
    /// c = beta · c + a · b in place, where a is the first c.shape[0] rows of <paramref name="source"/>
    /// from row <paramref name="first"/>; returns c. With fewer than <see cref="MinRows"/> rows, the
    /// product reads <see cref="MinRows"/> rows of <paramref name="source"/> (which must have them:
    /// any finite values) and goes through a scratch buffer.
    /// </summary>
    public Tensor AddProduct(Tensor c, Tensor source, long first, Tensor b, int beta)
    {
        var n = c.shape[0];
        if (n >= MinRows) return c.addmm_(source.narrow(0, first, n), b, beta, 1);
        if (_scratch is null || _scratch.shape[1] != c.shape[1]) _scratch = torch.zeros(MinRows, c.shape[1], dtype: c.dtype);
        if (beta != 0) _scratch.narrow(0, 0, n).copy_(c);
        _scratch.addmm_(source.narrow(0, first, MinRows), b, beta, 1);
        return c.copy_(_scratch.narrow(0, 0, n));
    }

    /// <summary><paramref name="a"/> itself when it has <see cref="MinRows"/> rows or more, else a copy padded with zero rows to that many.</summary>
    public static Tensor AtLeastMinRows(Tensor a)
    {
        if (a.shape[0] >= MinRows) return a;
        var padded = torch.zeros(MinRows, a.shape[1], dtype: a.dtype);
        padded.narrow(0, 0, a.shape[0]).copy_(a);
        return padded;
    }
}
