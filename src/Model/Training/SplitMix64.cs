namespace NameRnn.Model.Training;

/// <summary>
/// A small, fully specified random generator (SplitMix64), so that shuffles and initial weights are
/// the same on every machine and .NET version and its whole state is one number to checkpoint.
/// </summary>
public struct SplitMix64(ulong state)
{
    public ulong State { get; private set; } = state;

    /// <summary>What the state adds per draw.</summary>
    public const ulong Gamma = 0x9E3779B97F4A7C15UL;

    public ulong NextUInt64()
    {
        State = unchecked(State + Gamma);
        return Mix(State);
    }

    /// <summary>The multipliers of the mixing function (after shifts by 30 and 27; a last shift by 31).</summary>
    public const ulong Mix1 = 0xBF58476D1CE4E5B9UL, Mix2 = 0x94D049BB133111EBUL;

    /// <summary>What a draw returns for the state it moved to: the k-th next draw returns Mix(State + k · Gamma), whatever came before.</summary>
    private static ulong Mix(ulong state)
    {
        var z = state;
        z = unchecked((z ^ (z >> 30)) * Mix1);
        z = unchecked((z ^ (z >> 27)) * Mix2);
        return z ^ (z >> 31);
    }

    /// <summary>Moves on by <paramref name="draws"/> draws without computing them.</summary>
    public void Skip(ulong draws) => State = unchecked(State + draws * Gamma);

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, bound) without modulo bias.</summary>
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        var limit = ulong.MaxValue - ulong.MaxValue % (ulong)bound;
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (int)(x % (ulong)bound);
    }

    /// <summary>The order of the training set in one epoch: a Fisher-Yates shuffle seeded by (seed, epoch).</summary>
    public static int[] EpochPermutation(int count, long seed, int epoch)
    {
        var rng = new SplitMix64(unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(epoch + 1) * 0xD1B54A32D192ED03UL));
        var order = Enumerable.Range(0, count).ToArray();
        for (var i = count - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}
