using System.IO.Compression;
using System.Text;

namespace NameRnn.Tests.Cli;

/// <summary>Each bad input ends with one clear line on stderr and a non-zero exit code, never a stack trace.</summary>
public class BadInputTests
{
    private static void AssertOneLineError(CliResult result, int exitCode, params string[] fragments)
    {
        Assert.Equal(exitCode, result.ExitCode);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var last = lines[^1];
        Assert.StartsWith("error: ", last);
        foreach (var fragment in fragments) Assert.Contains(fragment, last);
        Assert.DoesNotContain("   at ", result.Error);
    }

    private static Task<CliResult> Train(string data, params string[] extra) =>
        CliRunner.RunAsync(["train", "--data", data, "--out", Path.Combine(TestData.TempFolder(), "out"), .. extra]);

    [Fact]
    public async Task A_missing_data_path_is_named()
    {
        var missing = Path.Combine(TestData.TempFolder(), "nowhere");
        AssertOneLineError(await Train(missing), 1, missing, "does not exist");
    }

    [Fact]
    public async Task An_empty_folder_is_named()
    {
        var empty = TestData.TempFolder();
        AssertOneLineError(await Train(empty), 1, empty, "no <Language>.txt");
    }

    [Fact]
    public async Task Invalid_utf8_names_the_file_and_the_line()
    {
        var folder = TestData.TempFolder();
        File.WriteAllText(Path.Combine(folder, "Czech.txt"), "Novak\n");
        File.WriteAllBytes(Path.Combine(folder, "Polish.txt"), [.. Encoding.UTF8.GetBytes("Nowak\nKowalski\nWi"), 0xC5, (byte)'\n']);
        AssertOneLineError(await Train(folder), 1, "Polish.txt line 3", "invalid UTF-8");
    }

    [Fact]
    public async Task A_zip_without_names_files_is_refused()
    {
        var zip = Path.Combine(TestData.TempFolder(), "other.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(archive.CreateEntry("data/readme.txt").Open());
            writer.Write("not names");
        }
        AssertOneLineError(await Train(zip), 1, zip, "names/<Language>.txt");
    }

    [Fact]
    public async Task A_file_that_is_not_a_zip_is_refused()
    {
        var file = Path.Combine(TestData.TempFolder(), "data.zip");
        File.WriteAllBytes(file, Encoding.ASCII.GetBytes("this is not a zip archive at all"));
        AssertOneLineError(await Train(file), 1, file, "zip");
    }

    [Theory]
    [InlineData("--epochs", "0", "--epochs")]
    [InlineData("--workers", "0", "--workers")]
    [InlineData("--batch-size", "-4", "--batch-size")]
    [InlineData("--hidden", "abc", "--hidden")]
    [InlineData("--lr", "-0.1", "--lr")]
    [InlineData("--cell", "transformer", "--cell")]
    [InlineData("--optimizer", "lbfgs", "--optimizer")]
    [InlineData("--class-weight-power", "9", "--class-weight-power")]
    [InlineData("--replicas", "maybe", "--replicas")]
    [InlineData("--segment-steps", "-1", "--segment-steps")]
    [InlineData("--segment-steps", "257", "--segment-steps")]
    [InlineData("--segment-steps", "8", "--replicas on")]
    [InlineData("--no-such-option", "1", "--no-such-option")]
    public async Task Out_of_range_or_unknown_options_are_usage_errors(string option, string value, string named) =>
        AssertOneLineError(await Train(TestData.NamesFolder, option, value), 2, named);

    [Theory]
    [InlineData("--hidden", "1024")]         // the parameters alone: 4.2 MB
    [InlineData("--batch-size", "4096")]     // one message may carry a whole step's names
    public async Task A_cluster_run_whose_messages_exceed_the_frame_size_is_refused_before_it_starts(string option, string value)
    {
        var settings = new NameRnn.Coordinator.Cli.TrainSettings { Cluster = true, MaxFrameSize = 1_000_000 };
        NameRnn.Worker.Hosting.CommandLine.Apply(settings, [option, value]);
        var needed = NameRnn.Worker.Hosting.NameRnnHosting.RequiredFrameSize(settings.ToTrainingOptions().Model(18).ParameterCount, settings.BatchSize);
        Assert.True(needed > 1_000_000, $"{option} {value} should need more than the frame: {needed}");
        AssertOneLineError(await Train(TestData.NamesFolder, "--cluster", "--max-frame-size", "1000000", option, value), 2,
            "--max-frame-size", $"at least {needed}");
    }

    [Fact]
    public async Task Names_that_normalise_to_nothing_are_skipped_counted_and_warned_about_once()
    {
        var folder = TestData.TempFolder();
        foreach (var file in Directory.GetFiles(TestData.NamesFolder, "*.txt"))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        File.AppendAllText(Path.Combine(folder, "Chinese.txt"), "张伟\n李\n");
        File.AppendAllText(Path.Combine(folder, "Korean.txt"), "김\n");
        var outDir = Path.Combine(TestData.TempFolder(), "out");
        var result = await CliRunner.RunAsync("train", "--data", folder, "--out", outDir, "--max-names", "200", "--epochs", "1", "--workers", "1");
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Single(result.Error.Split('\n'), l => l.Contains("Skipped 3 lines"));
        var summary = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        Assert.Equal(3, summary.GetProperty("data").GetProperty("skipped_empty_after_normalisation").GetInt32());
    }

    [Theory]
    [InlineData("--log-level", "chatty")]
    [InlineData("--name", "a/b")]
    public async Task Bad_logging_options_are_usage_errors(string option, string value) =>
        AssertOneLineError(await Train(TestData.NamesFolder, option, value), 2, option);

    [Fact]
    public async Task An_unknown_command_is_a_usage_error() =>
        AssertOneLineError(await CliRunner.RunAsync("fly"), 2, "fly");

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("张伟")]
    [InlineData("123")]
    public async Task Predict_refuses_a_name_without_letters(string name)
    {
        var model = TestData.TempFolder();
        AssertOneLineError(await CliRunner.RunAsync("predict", "--model", model, "Smith", name), 2, "no letters");
    }

    [Fact]
    public async Task Predict_without_a_model_says_where_it_looked()
    {
        var model = Path.Combine(TestData.TempFolder(), "none");
        AssertOneLineError(await CliRunner.RunAsync("predict", "--model", model, "Smith"), 1, model);
    }

    [Fact]
    public async Task Predict_without_names_is_a_usage_error() =>
        AssertOneLineError(await CliRunner.RunAsync("predict", "--model", TestData.TempFolder()), 2, "NAME");
}
