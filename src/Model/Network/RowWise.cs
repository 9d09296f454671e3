using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

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
        // size(d), not shape: TorchSharp's shape leaves an object for the finalizer at every call (see GradientEngine's One).
        var n = c.size(0);
        if (n >= MinRows) return c.addmm_(source.narrow(0, first, n), b, beta, 1);
        if (_scratch is null || _scratch.size(1) != c.size(1)) _scratch = torch.zeros(MinRows, c.size(1), dtype: c.dtype);
        if (beta != 0) _scratch.narrow(0, 0, n).copy_(c);
        _scratch.addmm_(source.narrow(0, first, MinRows), b, beta, 1);
        return c.copy_(_scratch.narrow(0, 0, n));
    }

    /// <summary><paramref name="a"/> itself when it has <see cref="MinRows"/> rows or more, else a copy padded with zero rows to that many.</summary>
    public static Tensor AtLeastMinRows(Tensor a)
    {
        var rows = a.size(0);
        if (rows >= MinRows) return a;
        var padded = torch.zeros(MinRows, a.size(1), dtype: a.dtype);
        padded.narrow(0, 0, rows).copy_(a);
        return padded;
    }
}
