using TorchSharp;
using static TorchSharp.torch;

namespace NameRnn.Model.Network;

/// <summary>
/// Inverted dropout whose masks come from a generator seeded per micro-batch, so that whichever
/// worker computes a micro-batch draws the same masks and the result bits do not depend on it.
/// </summary>
public sealed class Dropout(double rate, long seed) : IDisposable
{
    private readonly Generator _generator = new((ulong)seed);

    public Tensor Apply(Tensor x)
    {
        using var threshold = rate.ToScalar();
        using var scale = (1.0 / (1.0 - rate)).ToScalar();
        var keep = torch.rand(x.shape, dtype: x.dtype, generator: _generator).ge(threshold).to_type(x.dtype).mul_(scale);
        return x * keep;
    }

    public void Dispose() => _generator.Dispose();
}
