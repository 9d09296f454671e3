using System.Text.Json;
using NameRnn.Model.Training;

namespace NameRnn.Tests.Cli;

/// <summary>Worker faults in local mode and damaged checkpoints: the run still ends with the same bits.</summary>
public class FaultInProcessTests
{
    private static readonly string[] Options = ["--max-names", "1200", "--epochs", "2", "--batch-size", "64", "--micro-batch", "16"];

    private static async Task<(CliResult Result, string Sha)> TrainAsync(string dir, params string[] extra)
    {
        var result = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--out", dir, .. Options, .. extra]);
        Assert.True(result.ExitCode == 0, result.Error);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        return (result, summary.GetProperty("parameters_sha256").GetString()!);
    }

    [Fact]
    public async Task A_worker_that_throws_on_one_micro_batch_changes_nothing()
    {
        var root = TestData.TempFolder();
        var (_, plain) = await TrainAsync(Path.Combine(root, "plain"), "--workers", "1");
        var (faulty, sha) = await TrainAsync(Path.Combine(root, "faulty"), "--workers", "2", "--test-fail-at", "5:0");
        Assert.Contains("injected failure at step 5 micro-batch 0", faulty.Error);
        Assert.Equal(plain, sha);
    }

    [Fact]
    public async Task In_segments_a_worker_that_throws_sends_the_run_back_to_the_last_committed_state_and_changes_nothing()
    {
        var root = TestData.TempFolder();
        var (_, plain) = await TrainAsync(Path.Combine(root, "plain"), "--workers", "1");
        // Segments of 4 steps: step 5 fails in the second, most likely after the first (steps 0-3) is committed.
        var (faulty, sha) = await TrainAsync(Path.Combine(root, "faulty"), "--workers", "2", "--replicas", "on", "--segment-steps", "4", "--test-fail-at", "5:0");
        Assert.Contains("injected failure at step 5 micro-batch 0", faulty.Error);
        Assert.Matches("training goes back to step [04], the last state the coordinator committed", faulty.Error);
        Assert.Equal(plain, sha);
    }

    [Fact]
    public async Task A_straggler_s_micro_batch_is_reissued_and_the_first_reply_wins()
    {
        var root = TestData.TempFolder();
        var (_, plain) = await TrainAsync(Path.Combine(root, "plain"), "--workers", "1", "--epochs", "1");
        var (slow, sha) = await TrainAsync(Path.Combine(root, "slow"), "--workers", "2", "--epochs", "1", "--test-slow-ms", "400");
        Assert.Contains("also given to", slow.Error);
        Assert.Equal(plain, sha);
    }

    [Fact]
    public async Task A_micro_batch_that_keeps_failing_stops_the_run_with_a_checkpoint_and_the_names()
    {
        var dir = Path.Combine(TestData.TempFolder(), "run");
        var result = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--out", dir, .. Options,
            "--workers", "1", "--test-fail-at", "3:1", "--max-attempts", "1"]);
        Assert.Equal(1, result.ExitCode);
        var error = result.Error.Trim().Split('\n')[^1];
        Assert.Contains("micro-batches 0-3 of step 3 failed 1 times", error); // one worker: the whole step of 4 is one unit
        Assert.Contains("its names:", error);
        var (checkpoint, _, _) = CheckpointStore.LoadLatest(dir);
        Assert.Equal(3, checkpoint!.State.Step);
    }

    [Fact]
    public async Task A_checkpoint_cut_by_one_byte_is_refused_and_the_one_before_is_used()
    {
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "run");
        var (_, full) = await TrainAsync(dir, "--workers", "1", "--checkpoint-every", "10");
        var newest = CheckpointStore.List(dir)[0];
        var bytes = await File.ReadAllBytesAsync(newest);
        await File.WriteAllBytesAsync(newest, bytes[..^1]);
        var refused = Assert.Throws<NameRnn.Model.Data.DataException>(() => CheckpointStore.Read(newest));
        Assert.Contains("checksum", refused.Message);
        File.Delete(Path.Combine(dir, "summary.json"));

        var resumed = await CliRunner.RunAsync("train", "--resume", dir, "--workers", "2");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains("Refused a checkpoint", resumed.Error);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        Assert.Equal(full, summary.GetProperty("parameters_sha256").GetString());
    }

    [Fact]
    public async Task Resume_refuses_to_change_what_the_run_computes()
    {
        var dir = Path.Combine(TestData.TempFolder(), "run");
        await TrainAsync(dir, "--workers", "1", "--epochs", "1");
        var result = await CliRunner.RunAsync("train", "--resume", dir, "--epochs", "5");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--epochs", result.Error);
    }

    [Fact]
    public async Task Resume_without_a_checkpoint_says_so()
    {
        var dir = TestData.TempFolder();
        var result = await CliRunner.RunAsync("train", "--resume", dir);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("config.json", result.Error);
    }
}
