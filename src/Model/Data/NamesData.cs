using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace NameRnn.Model.Data;

/// <summary>Counts from reading the data set, for the log and the run's configuration.</summary>
public sealed record DataStats(
    int Files,
    int Lines,
    int NonEmptyLines,
    int EmptyAfterNormalisation,
    int PairsBeforeDeduplication,
    int PairsAfterDeduplication,
    string ContentSha256);

/// <summary>
/// The names data set: one <c>&lt;Language&gt;.txt</c> per class, UTF-8, one name a line, read from a
/// folder or from the tutorial's <c>data.zip</c> in place. Names are normalised and exact
/// (name, label) duplicates dropped, keeping the first (label order, then line order).
/// </summary>
public sealed class NamesData
{
    public IReadOnlyList<string> Labels { get; }
    public IReadOnlyList<LabelledName> Pairs { get; }
    public DataStats Stats { get; }
    public string Source { get; }

    private NamesData(string source, IReadOnlyList<string> labels, IReadOnlyList<LabelledName> pairs, DataStats stats)
    {
        Source = source;
        Labels = labels;
        Pairs = pairs;
        Stats = stats;
    }

    public IReadOnlyList<LabelledName> SplitOf(Split split) => Pairs.Where(p => NameSplit.Of(p.Name) == split).ToList();

    /// <summary>Reads a folder of <c>&lt;Language&gt;.txt</c> files (or one holding <c>names/</c>) or a zip with <c>names/*.txt</c>.</summary>
    public static NamesData Load(string path)
    {
        if (File.Exists(path))
            return LoadZip(path);
        if (Directory.Exists(path))
            return LoadFolder(path);
        throw new DataException($"data path '{path}' does not exist: expected a folder of <Language>.txt files or the tutorial's data.zip");
    }

    private static NamesData LoadFolder(string folder)
    {
        var candidates = new[] { folder, Path.Combine(folder, "names"), Path.Combine(folder, "data", "names") };
        foreach (var candidate in candidates)
        {
            if (!Directory.Exists(candidate)) continue;
            var files = Directory.GetFiles(candidate, "*.txt");
            if (files.Length == 0) continue;
            var sources = files
                .Select(f => (Label: Path.GetFileNameWithoutExtension(f), Display: f, Read: (Func<byte[]>)(() => File.ReadAllBytes(f))))
                .ToList();
            return Build(candidate, sources);
        }
        throw new DataException($"data folder '{folder}' holds no <Language>.txt files (looked in it, in names/ and in data/names/)");
    }

    private static NamesData LoadZip(string zipPath)
    {
        ZipArchive archive;
        try
        {
            archive = ZipFile.OpenRead(zipPath);
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"data file '{zipPath}' is not a readable zip archive ({e.Message}): expected a folder of <Language>.txt files or the tutorial's data.zip");
        }
        using (archive)
        {
            var entries = archive.Entries
                .Where(e => e.FullName.EndsWith(".txt", StringComparison.Ordinal) && IsInNamesFolder(e.FullName))
                .ToList();
            if (entries.Count == 0)
                throw new DataException($"zip '{zipPath}' holds no names/<Language>.txt entries: expected the tutorial's data.zip (data/names/*.txt)");
            var sources = entries
                .Select(e => (Label: Path.GetFileNameWithoutExtension(e.Name), Display: $"{zipPath}!{e.FullName}", Read: (Func<byte[]>)(() => ReadEntry(e, $"{zipPath}!{e.FullName}"))))
                .ToList();
            return Build(zipPath, sources);
        }
    }

    private static bool IsInNamesFolder(string entryName)
    {
        var parts = entryName.Split('/');
        return parts.Length >= 2 && parts[^2] == "names" && parts[^1].Length > ".txt".Length;
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string display)
    {
        try
        {
            using var stream = entry.Open();
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            return buffer.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"{display}: the zip entry cannot be read ({e.Message}): the archive is damaged");
        }
    }

    private static NamesData Build(string source, List<(string Label, string Display, Func<byte[]> Read)> files)
    {
        files.Sort((a, b) => string.CompareOrdinal(a.Label, b.Label));
        var labels = files.Select(f => f.Label).ToList();
        var seen = new HashSet<LabelledName>();
        var pairs = new List<LabelledName>();
        int lines = 0, nonEmpty = 0, emptyAfterNormalisation = 0, before = 0;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (var label = 0; label < files.Count; label++)
        {
            var (name, display, read) = files[label];
            var bytes = read();
            sha.AppendData(Encoding.UTF8.GetBytes(name + "\n"));
            sha.AppendData(bytes);
            var kept = 0;
            foreach (var (lineNumber, text) in ReadLines(bytes, display))
            {
                lines++;
                var trimmed = text.Trim();
                if (trimmed.Length == 0) continue;
                nonEmpty++;
                var normalised = Alphabet.Normalise(trimmed);
                if (normalised.Length == 0)
                {
                    emptyAfterNormalisation++;
                    continue;
                }
                before++;
                kept++;
                var pair = new LabelledName(normalised, label);
                if (seen.Add(pair)) pairs.Add(pair);
            }
            if (kept == 0)
                throw new DataException($"{display}: no name is left after normalisation: each <Language>.txt must hold at least one name made of the letters a-z, A-Z, space and .,;'");
        }
        var stats = new DataStats(files.Count, lines, nonEmpty, emptyAfterNormalisation, before, pairs.Count,
            Convert.ToHexStringLower(sha.GetHashAndReset()));
        return new NamesData(source, labels, pairs, stats);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Lines of a UTF-8 file (\n, \r\n or \r breaks), each with its 1-based number; invalid UTF-8 names file and line.</summary>
    private static IEnumerable<(int Line, string Text)> ReadLines(byte[] bytes, string display)
    {
        var start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        var lineNumber = 0;
        while (start < bytes.Length)
        {
            var end = Array.IndexOf(bytes, (byte)'\n', start);
            if (end < 0) end = bytes.Length;
            lineNumber++;
            var length = end - start;
            if (length > 0 && bytes[end - 1] == (byte)'\r') length--;
            string text;
            try
            {
                text = StrictUtf8.GetString(bytes, start, length);
            }
            catch (DecoderFallbackException e)
            {
                var column = e.Index >= 0 ? $" at byte {e.Index + 1} of the line" : "";
                throw new DataException($"{display} line {lineNumber}: invalid UTF-8{column}: expected a UTF-8 text file with one name a line");
            }
            if (text.IndexOf('\0') >= 0)
                throw new DataException($"{display} line {lineNumber}: a NUL byte in the text: expected a UTF-8 text file with one name a line, not binary data");
            foreach (var part in text.Split('\r'))
                yield return (lineNumber, part);
            if (end == bytes.Length) break;
            start = end + 1;
        }
    }
}
