using NameRnn.Model.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// Inverted dropout whose masks come from a generator seeded per micro-batch, so that whichever
/// worker computes a micro-batch draws the same masks and the result bits do not depend on it.
/// The masks are drawn in C# from <see cref="SplitMix64"/> (two 32-bit uniforms per draw) and
/// copied in: libtorch's generator (a Mersenne twister behind <c>torch.rand</c>) took about a tenth
/// of a small micro-batch's time.
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
    public Tensor Mask(Tensor x)
    {
        var values = new float[x.numel()];
        // An element is dropped when its uniform u in [0, 1), 32 bits, is below the rate: u < rate ⇔ bits < rate · 2^32.
        var threshold = (ulong)Math.Ceiling(_rate * 4294967296.0);
        var kept = (float)(1.0 / (1.0 - _rate));
        for (var i = 0; i < values.Length; i += 2)
        {
            var bits = _generator.NextUInt64();
            values[i] = (bits & 0xFFFFFFFFUL) < threshold ? 0f : kept;
            if (i + 1 < values.Length) values[i + 1] = (bits >> 32) < threshold ? 0f : kept;
        }
        var mask = torch.tensor(values).view(x.shape);
        return x.dtype == ScalarType.Float32 ? mask : mask.to_type(x.dtype);
    }
}
