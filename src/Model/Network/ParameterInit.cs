using NameRnn.Model.Training;

namespace NameRnn.Model.Network;

public static class ParameterInit
{
    /// <summary>PyTorch's default for RNN and Linear layers: every weight and bias uniform in ±1/√hidden.</summary>
    public static float[] Create(ModelConfig config, long seed)
    {
        var rng = new SplitMix64(unchecked((ulong)seed ^ 0x5DEECE66DUL));
        var bound = 1.0 / Math.Sqrt(config.Hidden);
        var values = new float[config.ParameterCount];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        return values;
    }
}
