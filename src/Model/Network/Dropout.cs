using System.Runtime.InteropServices;
using NameRnn.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// Inverted dropout whose masks come from a generator seeded per micro-batch, so that whichever
/// worker computes a micro-batch draws the same masks and the result bits do not depend on it.
/// The masks are drawn in C# from <see cref="SplitMix64"/> (two 32-bit uniforms per draw), without a
/// branch per element, straight into the mask tensor: libtorch's generator (a Mersenne twister behind
/// <c>torch.rand</c>) took about a tenth of a small micro-batch's time, this about 4 %.
/// </summary>
public sealed class Dropout
{
    private readonly double _rate;
    private SplitMix64 _generator;

    public Dropout(double rate, long seed)
    {
        if (rate is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(rate), rate, "the dropout rate must be in [0, 1)");
        _rate = rate;
        _generator = new SplitMix64(unchecked((ulong)seed));
    }

    public Tensor Apply(Tensor x) => x * Mask(x);

    /// <summary>The next mask for a tensor of <paramref name="x"/>'s shape: 0 where dropped, 1 / (1 − rate) where kept.</summary>
    public Tensor Mask(Tensor x) => Mask(x.shape, x.dtype);

    /// <summary>The next mask for a tensor of <paramref name="shape"/> and <paramref name="dtype"/>.</summary>
    public Tensor Mask(long[] shape, ScalarType dtype)
    {
        var mask = torch.empty(shape, dtype: ScalarType.Float32);
        // An element is dropped when its uniform u in [0, 1), 32 bits, is below the rate: u < rate ⇔ bits < rate · 2^32.
        var threshold = (long)Math.Ceiling(_rate * 4294967296.0);
        var kept = BitConverter.SingleToInt32Bits((float)(1.0 / (1.0 - _rate)));
        // Written straight into the tensor's memory (a new tensor is contiguous).
        var bits = MemoryMarshal.Cast<byte, int>(mask.bytes);
        var i = 0;
        for (; i + 1 < bits.Length; i += 2)
        {
            var draw = _generator.NextUInt64();
            bits[i] = kept & Kept(draw & 0xFFFFFFFFUL, threshold);
            bits[i + 1] = kept & Kept(draw >> 32, threshold);
        }
        if (i < bits.Length) bits[i] = kept & Kept(_generator.NextUInt64() & 0xFFFFFFFFUL, threshold);
        return dtype == ScalarType.Float32 ? mask : mask.to_type(dtype);
    }

    /// <summary>All ones when <paramref name="uniform"/> ≥ <paramref name="threshold"/> (kept), else 0: no branch to mispredict at random.</summary>
    private static int Kept(ulong uniform, long threshold) => (int)~(((long)uniform - threshold) >> 63);
}
