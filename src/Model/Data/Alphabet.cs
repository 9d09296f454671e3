using System.Globalization;
using System.Text;

namespace NameRnn.Model.Data;

/// <summary>The 57 letters a name is made of, and the normalisation that maps any text onto them.</summary>
public static class Alphabet
{
    public const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;'";
    public static int Size => Letters.Length;

    private static readonly int[] IndexOfChar = BuildIndex();

    private static int[] BuildIndex()
    {
        var index = new int[128];
        Array.Fill(index, -1);
        for (var i = 0; i < Letters.Length; i++) index[Letters[i]] = i;
        return index;
    }

    /// <summary>NFD-decompose, drop combining marks (Mn), keep only the 57 letters: "Ślusàrski" → "Slusarski".</summary>
    public static string Normalise(string text)
    {
        var decomposed = text.Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(decomposed.Length);
        foreach (var ch in decomposed)
        {
            if (CharUnicodeInfo.GetUnicodeCategory(ch) == UnicodeCategory.NonSpacingMark) continue;
            if (ch < 128 && IndexOfChar[ch] >= 0) sb.Append(ch);
        }
        return sb.ToString();
    }

    /// <summary>Letter indices of an already normalised name.</summary>
    public static int[] Encode(string normalisedName)
    {
        var result = new int[normalisedName.Length];
        for (var i = 0; i < normalisedName.Length; i++)
        {
            var ch = normalisedName[i];
            var index = ch < 128 ? IndexOfChar[ch] : -1;
            if (index < 0)
                throw new ArgumentException($"'{ch}' in \"{normalisedName}\" is not one of the {Size} letters; normalise the name first.", nameof(normalisedName));
            result[i] = index;
        }
        return result;
    }
}
