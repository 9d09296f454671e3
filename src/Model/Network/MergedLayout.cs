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
