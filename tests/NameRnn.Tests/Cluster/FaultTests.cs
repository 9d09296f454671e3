using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace NameRnn.Tests.Cluster;

/// <summary>Real failures of real processes: the run ends with the bits of an undisturbed one.</summary>
public class FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);
    private static readonly string[] Options = ["--max-names", "3000", "--epochs", "3", "--batch-size", "64", "--micro-batch", "16"];

    private static JsonElement Summary(string dir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
    private static string Sha(string dir) => Summary(dir).GetProperty("parameters_sha256").GetString()!;

    private static async Task<string> UndisturbedAsync(string dir, params string[] extra)
    {
        var run = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--out", dir, "--workers", "1", .. Options, .. extra]);
        Assert.True(run.ExitCode == 0, run.Error);
        return Sha(dir);
    }

    private static (NodeProcess Coordinator, string Address) StartCoordinator(string root, string outDir, int minWorkers, params string[] extra)
    {
        var addressFile = Path.Combine(root, "address");
        var coordinator = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--cluster", "--hostname", "127.0.0.1", "--port", "0",
            "--address-file", addressFile, "--min-workers", minWorkers.ToString(), "--data", TestData.NamesFolder, "--out", outDir, .. Options, .. extra]);
        var deadline = DateTime.UtcNow + Limit;
        while (!File.Exists(addressFile) && DateTime.UtcNow < deadline && !coordinator.HasExited) Thread.Sleep(50);
        Assert.True(File.Exists(addressFile), coordinator.Output);
        return (coordinator, File.ReadAllText(addressFile).Trim());
    }

    private static NodeProcess StartWorker(string address, params string[] extra) =>
        NodeProcess.Start(NodeProcess.Worker, ["--seed-node", address, "--hostname", "127.0.0.1", .. extra]);

    [Fact]
    public async Task Killing_one_of_two_worker_processes_mid_epoch_loses_nothing()
    {
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "cluster");
        var (coordinator, address) = StartCoordinator(root, dir, 2);
        using var _ = coordinator;
        using var survivor = StartWorker(address);
        using var victim = StartWorker(address, "--test-slow-ms", "5");
        await coordinator.WaitForLineAsync(l => l.Contains("Epoch 1/3"), Limit);
        await Task.Delay(300);
        var clock = Stopwatch.StartNew();
        victim.Kill();
        await coordinator.WaitForLineAsync(l => l.Contains("unreachable") || l.Contains("is gone"), Limit);
        output.WriteLine($"work of the killed worker reassigned {clock.Elapsed.TotalSeconds:F2} s after kill -9");
        Assert.Equal(0, await coordinator.WaitForExitAsync(Limit));
        Assert.Equal(await UndisturbedAsync(Path.Combine(root, "local")), Sha(dir));
    }

    [Fact]
    public async Task A_killed_coordinator_resumes_from_its_checkpoint_to_the_same_bits()
    {
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "run");
        using (var first = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--data", TestData.NamesFolder, "--out", dir,
                   "--workers", "2", "--checkpoint-every", "25", "--test-slow-ms", "10", .. Options]))
        {
            await first.WaitForLineAsync(l => l.Contains("Epoch 2/3"), Limit);
            first.Kill();
            await first.WaitForExitAsync(Limit);
        }
        Assert.False(File.Exists(Path.Combine(dir, "summary.json")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir, "checkpoints")));
        var resumed = await CliRunner.RunAsync("train", "--resume", dir, "--workers", "1");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains("Resuming run", resumed.Error);
        Assert.Equal(await UndisturbedAsync(Path.Combine(root, "local")), Sha(dir));
    }

    [Fact]
    public async Task With_no_worker_left_the_coordinator_saves_a_checkpoint_and_the_run_resumes_elsewhere()
    {
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "cluster");
        // The timeout also bounds the wait for the first worker, whose start took 4 s on a slow day of the
        // 2-core machine: 3 s failed there before the run began.
        var (coordinator, address) = StartCoordinator(root, dir, 1, "--worker-timeout", "12", "--checkpoint-every", "20");
        using var _ = coordinator;
        using (var only = StartWorker(address, "--test-slow-ms", "5"))
        {
            await coordinator.WaitForLineAsync(l => l.Contains("Epoch 1/3"), Limit);
            only.Kill();
        }
        Assert.Equal(1, await coordinator.WaitForExitAsync(Limit));
        var error = coordinator.Output.Split('\n').Last(l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.True(error.Contains("no worker") && error.Contains($"--resume {dir}"), coordinator.Output);

        var resumed = await CliRunner.RunAsync("train", "--resume", dir, "--workers", "2");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Equal(await UndisturbedAsync(Path.Combine(root, "local")), Sha(dir));
    }

    [Fact]
    public async Task A_worker_without_the_cluster_secret_is_refused_and_the_run_goes_on_with_the_others()
    {
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "cluster");
        var (coordinator, address) = StartCoordinator(root, dir, 1, "--cluster-secret", "open sesame", "--epochs", "1");
        using var _ = coordinator;
        using var stranger = StartWorker(address);
        await coordinator.WaitForLineAsync(l => l.Contains("Refused worker") && l.Contains("secret"), Limit);
        await stranger.WaitForLineAsync(l => l.Contains("refused"), Limit);
        using var member = StartWorker(address, "--cluster-secret", "open sesame");
        Assert.Equal(0, await coordinator.WaitForExitAsync(Limit));
        var workers = Summary(dir).GetProperty("micro_batches_per_worker").EnumerateObject().ToList();
        Assert.Single(workers);
        Assert.DoesNotContain("open sesame", File.ReadAllText(Path.Combine(dir, "config.json")));
    }

    [Fact]
    public async Task Nodes_train_over_tls_with_a_self_signed_certificate()
    {
        var root = TestData.TempFolder();
        var pfx = await TestData.SelfSignedPfxAsync(root);
        string[] tls = ["--tls-certificate", pfx, "--tls-password", "pw", "--tls-insecure"];
        var dir = Path.Combine(root, "cluster");
        var (coordinator, address) = StartCoordinator(root, dir, 1, [.. tls, "--epochs", "1"]);
        using var _ = coordinator;
        using var worker = StartWorker(address, tls);
        Assert.Equal(0, await coordinator.WaitForExitAsync(Limit));
        Assert.Equal(await UndisturbedAsync(Path.Combine(root, "local"), "--epochs", "1"), Sha(dir));
    }
}
