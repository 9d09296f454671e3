using System.Text;

namespace NameRnn.Model.Data;

public enum Split { Train, Validation, Test }

/// <summary>
/// The language-neutral split of DESIGN.md: FNV-1a-32 over the UTF-8 bytes of the normalised name,
/// hash % 100 &lt; 10 → test, &lt; 20 → validation, otherwise train.
/// </summary>
public static class NameSplit
{
    public const uint OffsetBasis = 2166136261;
    public const uint Prime = 16777619;

    public static uint Fnv1a32(ReadOnlySpan<byte> bytes)
    {
        var hash = OffsetBasis;
        foreach (var b in bytes)
        {
            hash ^= b;
            hash = unchecked(hash * Prime);
        }
        return hash;
    }

    public static uint Fnv1a32(string text) => Fnv1a32(Encoding.UTF8.GetBytes(text));

    public static Split Of(string normalisedName) => (Fnv1a32(normalisedName) % 100) switch
    {
        < 10 => Split.Test,
        < 20 => Split.Validation,
        _ => Split.Train,
    };
}
