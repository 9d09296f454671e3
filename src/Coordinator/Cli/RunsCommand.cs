using System.Globalization;
using System.Text;
using System.Text.Json;
using NameRnn.Coordinator.Runs;
using NameRnn.Model.Data;
using NameRnn.Worker.Hosting;

namespace NameRnn.Coordinator.Cli;

public sealed class RunsSettings : CommandSettings
{
    [Option("--runs-dir", "where the run folders are", Value = "DIR")]
    public string RunsDir { get; set; } = "runs";
}

/// <summary><c>runs list</c>, <c>runs show RUN</c>, <c>runs compare RUN RUN...</c>: find, read and compare logged runs.</summary>
public static class RunsCommand
{
    private sealed record RunInfo(string Folder, JsonElement Config, JsonElement? Summary)
    {
        public string Name => Path.GetFileName(Folder.TrimEnd(Path.DirectorySeparatorChar));
    }

    private static RunInfo Read(string folder)
    {
        var config = RunFolder.ReadJson(Path.Combine(folder, RunFolder.ConfigFile))
                     ?? throw new DataException($"{folder}: no readable {RunFolder.ConfigFile}: not a run folder written by train");
        return new RunInfo(folder, config, RunFolder.ReadJson(Path.Combine(folder, RunFolder.SummaryFile)));
    }

    /// <summary>A run given as a folder path or as a folder name under --runs-dir (a unique prefix will do).</summary>
    private static RunInfo Find(string runsDir, string run)
    {
        if (Directory.Exists(run)) return Read(run);
        var matches = RunFolder.List(runsDir).Select(Path.GetFileName).OfType<string>()
            .Where(n => n == run || n.StartsWith(run, StringComparison.Ordinal) || n.EndsWith("-" + run, StringComparison.Ordinal))
            .Select(n => Path.Combine(runsDir, n)).ToList();
        return matches.Count switch
        {
            1 => Read(matches[0]),
            0 => throw new UsageException($"no run '{run}' in {runsDir} (runs list shows them)"),
            _ => throw new UsageException($"'{run}' names {matches.Count} runs in {runsDir}: {string.Join(", ", matches.Select(Path.GetFileName))}"),
        };
    }

    private static string Get(JsonElement? element, params string[] path)
    {
        if (element is not { } e) return "";
        foreach (var key in path)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(key, out e)) return "";
        }
        return e.ValueKind switch
        {
            JsonValueKind.Number => e.TryGetInt64(out var l) ? l.ToString(CultureInfo.InvariantCulture) : e.GetDouble().ToString("0.####", CultureInfo.InvariantCulture),
            JsonValueKind.String => e.GetString() ?? "",
            JsonValueKind.True or JsonValueKind.False => e.GetBoolean().ToString().ToLowerInvariant(),
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            _ => e.GetRawText(),
        };
    }

    private static string Model(RunInfo r)
    {
        var o = r.Config.GetProperty("options");
        var cell = Get(o, "cell");
        var bidirectional = Get(o, "bidirectional") == "true" ? " bi" : "";
        return $"{cell}{Get(o, "hidden")}{bidirectional}";
    }

    private static string Status(RunInfo r) => r.Summary is null ? "unfinished" : Get(r.Summary, "test_accuracy");

    public static int List(RunsSettings settings, TextWriter stdout)
    {
        var runs = RunFolder.List(settings.RunsDir).Select(Read).ToList();
        if (runs.Count == 0)
        {
            stdout.WriteLine($"no runs in {settings.RunsDir}");
            return 0;
        }
        var rows = runs.Select(r => new[]
        {
            r.Name, DateTime.TryParse(Get(r.Config, "created"), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var created) ? created.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) : "", Model(r), Get(r.Summary, "epochs"), Status(r), Get(r.Summary, "test_macro_f1"),
            r.Summary is null ? "" : $"{double.Parse(Get(r.Summary, "wall_seconds"), CultureInfo.InvariantCulture):F1} s",
        }).ToList();
        stdout.Write(Table(["run", "created (UTC)", "model", "epochs", "test accuracy", "macro-F1", "duration"], rows));
        return 0;
    }

    public static int Show(RunsSettings settings, IReadOnlyList<string> runs, TextWriter stdout)
    {
        if (runs.Count != 1) throw new UsageException("runs show needs one RUN (a folder, or its name under --runs-dir)");
        var run = Find(settings.RunsDir, runs[0]);
        var report = Path.Combine(run.Folder, RunFolder.ReportFile);
        if (File.Exists(report))
        {
            stdout.Write(File.ReadAllText(report));
            return 0;
        }
        stdout.WriteLine($"# Run {Get(run.Config, "run_id")} (unfinished: no summary yet)");
        stdout.WriteLine(JsonSerializer.Serialize(run.Config, Json.Indented));
        return 0;
    }

    public static int Compare(RunsSettings settings, IReadOnlyList<string> names, TextWriter stdout)
    {
        if (names.Count < 2) throw new UsageException("runs compare needs two or more RUNs");
        var runs = names.Select(n => Find(settings.RunsDir, n)).ToList();
        var options = runs.Select(r => Flatten(r.Config.GetProperty("options"))).ToList();
        var keys = options.SelectMany(o => o.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var differing = keys.Where(k => options.Select(o => o.GetValueOrDefault(k, "")).Distinct().Count() > 1).ToList();
        var header = new[] { "" }.Concat(runs.Select(r => r.Name)).ToArray();
        var sb = new StringBuilder();
        sb.AppendLine(differing.Count == 0 ? "configuration: the same options" : "configuration differences:");
        if (differing.Count > 0)
            sb.Append(Table(header, differing.Select(k => new[] { k }.Concat(options.Select(o => o.GetValueOrDefault(k, ""))).ToArray()).ToList()));
        sb.AppendLine();
        sb.AppendLine("metrics:");
        string[] metrics = ["test_accuracy", "test_macro_f1", "best_validation_accuracy", "best_validation_macro_f1", "best_epoch", "epochs", "train_names_per_second", "wall_seconds", "parameter_count"];
        sb.Append(Table(header, metrics.Select(m => new[] { m }.Concat(runs.Select(r => Get(r.Summary, m))).ToArray()).ToList()));
        stdout.Write(sb.ToString());
        return 0;
    }

    private static Dictionary<string, string> Flatten(JsonElement element) =>
        element.EnumerateObject().ToDictionary(p => p.Name, p => Get(element, p.Name));

    private static string Table(string[] header, IReadOnlyList<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        var sb = new StringBuilder();
        sb.AppendLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows) sb.AppendLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        return sb.ToString();
    }
}
