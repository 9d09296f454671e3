using System.Text.Json;
using NameRnn.Coordinator.Cli;

namespace NameRnn.Coordinator.Runs;

/// <summary>Where runs live and what a run folder holds.</summary>
public static class RunFolder
{
    public const string ConfigFile = "config.json";
    public const string SummaryFile = "summary.json";
    public const string ReportFile = "summary.md";
    public const string LogFile = "log.clef";

    /// <summary><c>--out DIR</c> exactly, else <c>RUNS/yyyyMMdd-HHmmss-NAME</c> (a suffix added if that exists).</summary>
    public static string Resolve(string? outDir, string runsDir, string name, DateTime now)
    {
        if (!string.IsNullOrWhiteSpace(outDir)) return outDir;
        var stem = Path.Combine(runsDir, $"{now:yyyyMMdd-HHmmss}-{name}");
        var path = stem;
        for (var i = 2; Directory.Exists(path); i++) path = $"{stem}-{i}";
        return path;
    }

    /// <summary>The git commit of the working folder's repository, when there is one to read.</summary>
    public static string? GitCommit(string start)
    {
        for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
        {
            var git = Path.Combine(dir.FullName, ".git");
            if (!Directory.Exists(git)) continue;
            try
            {
                var head = File.ReadAllText(Path.Combine(git, "HEAD")).Trim();
                if (!head.StartsWith("ref: ", StringComparison.Ordinal)) return head;
                var reference = head[5..];
                var loose = Path.Combine(git, reference);
                if (File.Exists(loose)) return File.ReadAllText(loose).Trim();
                var packed = Path.Combine(git, "packed-refs");
                return File.Exists(packed)
                    ? File.ReadLines(packed).Select(l => l.Split(' ')).FirstOrDefault(p => p.Length == 2 && p[1] == reference)?[0]
                    : null;
            }
            catch (IOException)
            {
                return null;
            }
        }
        return null;
    }

    /// <summary>The run folders under <paramref name="runsDir"/> (those with a config.json), oldest first.</summary>
    public static IReadOnlyList<string> List(string runsDir) =>
        Directory.Exists(runsDir)
            ? Directory.GetDirectories(runsDir).Where(d => File.Exists(Path.Combine(d, ConfigFile))).Order(StringComparer.Ordinal).ToList()
            : [];

    public static JsonElement? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path)).RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
