using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NameRnn.Coordinator.Runs;

namespace NameRnn.Tests.Cli;

/// <summary>Logged runs: the run folder, its files, and the tools that read them.</summary>
public class RunFolderTests
{
    private static readonly string[] Quick = ["--max-names", "640", "--epochs", "2", "--batch-size", "64", "--micro-batch", "32", "--workers", "2"];

    /// <summary>40 steps per epoch: the steps reach the recorder in several batches, the last one short.</summary>
    private static readonly string[] SmallBatches = ["--max-names", "640", "--epochs", "2", "--batch-size", "16", "--micro-batch", "8", "--workers", "2"];

    private static async Task<string> TrainAsync(string runsDir, string name, string[]? options = null)
    {
        var result = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--runs-dir", runsDir, "--name", name, .. options ?? Quick]);
        Assert.True(result.ExitCode == 0, result.Error);
        return Assert.Single(Directory.GetDirectories(runsDir), d => d.EndsWith("-" + name, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_short_run_leaves_every_file_of_its_run_folder_readable()
    {
        var runs = TestData.TempFolder();
        var run = await TrainAsync(runs, "short", SmallBatches);
        Assert.Matches(@"^\d{8}-\d{6}-short$", Path.GetFileName(run));
        foreach (var file in new[] { "config.json", "metrics.csv", "log.clef", "summary.json", "summary.md", "model.json", "model.bin", "loss.png", "accuracy.png", "confusion.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} is missing");
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(run, "checkpoints")));

        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement;
        Assert.Equal(NameRnn.Model.Data.NamesData.Load(TestData.NamesFolder).Stats.ContentSha256, config.GetProperty("data_sha256").GetString());
        Assert.Equal(1L, config.GetProperty("options").GetProperty("seed").GetInt64());

        // metrics.csv: the agreed columns, a row per step (40 steps of 16 names per epoch) and per epoch.
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        Assert.Equal(RunRecorder.Columns, lines[0].Split(','));
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.All(rows, r => Assert.Equal(RunRecorder.Columns.Length, r.Length));
        var steps = rows.Where(r => r[0] == "step").ToList();
        var epochs = rows.Where(r => r[0] == "epoch").ToList();
        Assert.Equal(80, steps.Count);
        Assert.Equal(Enumerable.Range(1, 80).Select(i => i.ToString()), steps.Select(r => r[2]));
        Assert.Equal(Enumerable.Range(0, 80).Select(i => (i / 40 + 1).ToString()), steps.Select(r => r[1]));
        Assert.All(steps, r => Assert.True(double.Parse(r[3], CultureInfo.InvariantCulture) > 0));
        Assert.Equal(2, epochs.Count);
        // Each epoch's row follows its own steps.
        string[] epoch = [.. Enumerable.Repeat("step", 40), "epoch"];
        Assert.Equal([.. epoch, .. epoch], rows.Select(r => r[0]));

        // The summary's figures are the last epoch row's.
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json"))).RootElement;
        var history = summary.GetProperty("history").EnumerateArray().ToList();
        Assert.Equal(history[1].GetProperty("validation_accuracy").GetDouble(), double.Parse(epochs[1][10], CultureInfo.InvariantCulture), 12);

        // The log: one JSON event per line, each with its time, tagged with the run.
        var events = File.ReadAllLines(Path.Combine(run, "log.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(events, e => Assert.True(DateTime.TryParse(e.GetProperty("@t").GetString(), CultureInfo.InvariantCulture, out _)));
        Assert.Contains(events, e => e.TryGetProperty("Epoch", out var epoch) && epoch.GetInt32() == 2 && e.TryGetProperty("RunId", out _));

        // The pictures: PNG files of at least 800 x 600.
        foreach (var picture in new[] { "loss.png", "accuracy.png", "confusion.png" })
        {
            var png = File.ReadAllBytes(Path.Combine(run, picture));
            Assert.True(png.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), $"{picture} is not a PNG");
            Assert.Equal("IHDR", Encoding.ASCII.GetString(png, 12, 4));
            Assert.True(BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)) >= 800 && BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)) >= 600, picture);
        }
        Assert.Contains("![confusion](confusion.png)", File.ReadAllText(Path.Combine(run, "summary.md")));

        // TensorBoard: every record passes its CRC-32C checks, and the scalars are those of metrics.csv.
        var events2 = Assert.Single(Directory.GetFiles(run, "events.out.tfevents.*"));
        var scalars = TensorBoardFile.ReadScalars(events2);
        var accuracy = scalars.Where(s => s.Tag == "epoch/validation_accuracy").OrderBy(s => s.Step).ToList();
        Assert.Equal([1L, 2L], accuracy.Select(s => s.Step));
        Assert.Equal((float)double.Parse(epochs[1][10], CultureInfo.InvariantCulture), accuracy[1].Value);
        var losses = scalars.Where(s => s.Tag == "train/loss").ToDictionary(s => s.Step, s => s.Value);
        Assert.Equal(Enumerable.Range(1, 8).Select(i => 10L * i), losses.Keys.Order());
        Assert.Equal((float)double.Parse(steps[79][3], CultureInfo.InvariantCulture), losses[80]);
        Assert.Contains(scalars, s => s.Tag == "train/learning_rate");
        Assert.Contains(scalars, s => s.Tag == "epoch/validation_macro_f1");
        Assert.Contains(scalars, s => s.Tag == "train/names_per_second");
    }

    [Fact]
    public async Task Runs_list_shows_a_run_made_by_train_and_compare_shows_what_differs()
    {
        var runs = TestData.TempFolder();
        var first = await TrainAsync(runs, "first");
        var list = await CliRunner.RunAsync("runs", "list", "--runs-dir", runs);
        Assert.Equal(0, list.ExitCode);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(first, "summary.json"))).RootElement;
        var row = Assert.Single(list.Out.Split('\n'), l => l.StartsWith(Path.GetFileName(first), StringComparison.Ordinal));
        Assert.Contains(summary.GetProperty("test_accuracy").GetDouble().ToString("0.####", CultureInfo.InvariantCulture), row);
        Assert.Contains("rnn128", row);

        var other = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--runs-dir", runs, "--name", "second", .. Quick, "--lr", "0.005"]);
        Assert.Equal(0, other.ExitCode);
        var compare = await CliRunner.RunAsync("runs", "compare", "--runs-dir", runs, "first", "second");
        Assert.Equal(0, compare.ExitCode);
        Assert.Contains("learning_rate", compare.Out);
        Assert.DoesNotContain("\nhidden", compare.Out);
        var show = await CliRunner.RunAsync("runs", "show", "--runs-dir", runs, "second");
        Assert.Contains("| learning rate | 0.005 |", show.Out);
    }

    [Fact]
    public async Task Piped_train_output_has_no_terminal_escape_codes()
    {
        var runs = TestData.TempFolder();
        using var process = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--data", TestData.NamesFolder, "--runs-dir", runs, .. Quick]);
        Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.Contains("test accuracy", process.Output);
        Assert.DoesNotContain('\u001b', process.Output);
        Assert.DoesNotContain('\r', process.Output);
    }

    [Fact]
    public async Task A_failed_run_leaves_a_readable_config_and_a_log_that_says_why()
    {
        var runs = TestData.TempFolder();
        var missing = Path.Combine(runs, "no-data-here");
        var result = await CliRunner.RunAsync("train", "--data", missing, "--runs-dir", runs, "--name", "broken");
        Assert.Equal(1, result.ExitCode);
        var run = Assert.Single(Directory.GetDirectories(runs));
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement;
        Assert.Equal(missing, config.GetProperty("settings").GetProperty("data").GetString());
        var events = File.ReadAllLines(Path.Combine(run, "log.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(events, e => e.TryGetProperty("@l", out var level) && level.GetString() == "Error" && e.GetRawText().Contains("does not exist"));
    }

    [Fact]
    public async Task A_killed_run_leaves_a_readable_config_and_its_log_so_far()
    {
        var runs = TestData.TempFolder();
        using (var process = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--data", TestData.NamesFolder, "--runs-dir", runs, "--name", "killed",
                   "--max-names", "6000", "--epochs", "20"]))
        {
            await process.WaitForLineAsync(l => l.Contains("Epoch 1/20"), TimeSpan.FromMinutes(2));
            process.Kill();
            await process.WaitForExitAsync(TimeSpan.FromMinutes(1));
        }
        var run = Assert.Single(Directory.GetDirectories(runs));
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement;
        Assert.Equal(20, config.GetProperty("options").GetProperty("epochs").GetInt32());
        var events = File.ReadAllLines(Path.Combine(run, "log.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(events, e => e.GetProperty("@mt").GetString()!.StartsWith("Epoch", StringComparison.Ordinal));
    }
}

/// <summary>SIGTERM (docker stop, the end of a Kubernetes pod) stops a run in order, and it resumes exactly.</summary>
public class TerminateTests
{
    [Fact]
    public async Task A_terminated_run_says_how_to_resume_and_the_resumed_run_ends_with_the_same_bits()
    {
        string[] options = ["--data", TestData.NamesFolder, "--max-names", "3000", "--epochs", "20", "--workers", "1"];
        var root = TestData.TempFolder();
        var whole = Path.Combine(root, "whole");
        var plain = await CliRunner.RunAsync(["train", "--out", whole, .. options]);
        Assert.True(plain.ExitCode == 0, plain.Error);

        var stopped = Path.Combine(root, "stopped");
        using (var process = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--out", stopped, .. options]))
        {
            await process.WaitForLineAsync(l => l.Contains("Epoch 2/20"), TimeSpan.FromMinutes(2));
            process.Terminate();
            Assert.Equal(130, await process.WaitForExitAsync(TimeSpan.FromMinutes(1)));
            Assert.Contains($"train --resume {stopped}", process.Output);
        }
        Assert.False(File.Exists(Path.Combine(stopped, "summary.json")));

        var resumed = await CliRunner.RunAsync("train", "--resume", stopped);
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Equal(Sha(whole), Sha(stopped));
    }

    private static string Sha(string run) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json"))).RootElement.GetProperty("parameters_sha256").GetString()!;
}

/// <summary>Reads a TensorBoard event file independently of any writer: TFRecord framing with masked CRC-32C, and the Event protobuf.</summary>
public static class TensorBoardFile
{
    public sealed record Scalar(string Tag, long Step, float Value);

    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(i =>
    {
        var c = (uint)i;
        for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFFu;
    }

    private static uint Masked(ReadOnlySpan<byte> data)
    {
        var crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
    }

    public static List<Scalar> ReadScalars(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var scalars = new List<Scalar>();
        var at = 0;
        while (at < bytes.Length)
        {
            var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            Assert.Equal(Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)));
            var data = bytes.AsSpan(at + 12, (int)length);
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length)));
            ReadEvent(data, scalars);
            at += 12 + (int)length + 4;
        }
        return scalars;
    }

    private static void ReadEvent(ReadOnlySpan<byte> e, List<Scalar> scalars)
    {
        long step = 0;
        var summaries = new List<byte[]>();
        var at = 0;
        while (at < e.Length)
        {
            var (field, wire) = Key(e, ref at);
            if (field == 2 && wire == 0) step = (long)Varint(e, ref at);
            else if (field == 5 && wire == 2) summaries.Add(Bytes(e, ref at).ToArray());
            else Skip(e, wire, ref at);
        }
        foreach (var summary in summaries)
        {
            var s = summary.AsSpan();
            var i = 0;
            while (i < s.Length)
            {
                var (field, wire) = Key(s, ref i);
                if (field != 1 || wire != 2) { Skip(s, wire, ref i); continue; }
                var value = Bytes(s, ref i);
                string? tag = null;
                float? simple = null;
                var j = 0;
                while (j < value.Length)
                {
                    var (f, w) = Key(value, ref j);
                    if (f == 1 && w == 2) tag = Encoding.UTF8.GetString(Bytes(value, ref j));
                    else if (f == 2 && w == 5) { simple = BinaryPrimitives.ReadSingleLittleEndian(value[j..]); j += 4; }
                    else Skip(value, w, ref j);
                }
                if (tag is not null && simple is not null) scalars.Add(new Scalar(tag, step, simple.Value));
            }
        }
    }

    private static (int Field, int Wire) Key(ReadOnlySpan<byte> s, ref int at)
    {
        var key = Varint(s, ref at);
        return ((int)(key >> 3), (int)(key & 7));
    }

    private static ulong Varint(ReadOnlySpan<byte> s, ref int at)
    {
        ulong result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = s[at++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    private static ReadOnlySpan<byte> Bytes(ReadOnlySpan<byte> s, ref int at)
    {
        var length = (int)Varint(s, ref at);
        var slice = s.Slice(at, length);
        at += length;
        return slice;
    }

    private static void Skip(ReadOnlySpan<byte> s, int wire, ref int at)
    {
        switch (wire)
        {
            case 0: Varint(s, ref at); break;
            case 1: at += 8; break;
            case 2: Bytes(s, ref at); break;
            case 5: at += 4; break;
            default: throw new InvalidDataException($"wire type {wire}");
        }
    }
}
