using System.Collections.Concurrent;
using System.Diagnostics;

namespace NameRnn.Tests;

/// <summary>A real process of the project (a node, or a script), its output captured line by line, killed on dispose.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private NodeProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The configuration the tests were built in (Release or Debug); the programs are built alongside.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar) is var parts && Array.IndexOf(parts, "bin") is var i && i >= 0 && i + 1 < parts.Length
            ? parts[i + 1]
            : "Release";

    public static string Program(string project, string name) =>
        Path.Combine(TestData.RepositoryRoot, "src", project, "bin", Configuration, "net10.0", "linux-x64", name);

    public static string Coordinator => Program("Coordinator", "namernn");
    public static string Worker => Program("Worker", "namernn-worker");

    public static NodeProcess Start(string fileName, params string[] args) => Start(fileName, new Dictionary<string, string>(), args);

    /// <summary>Starts <paramref name="fileName"/> with <paramref name="environment"/> added to this process's environment.</summary>
    public static NodeProcess Start(string fileName, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestData.RepositoryRoot,
        };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return new NodeProcess(Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}"));
    }

    public string Output => string.Join(Environment.NewLine, _lines);
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{_process.StartInfo.FileName} did not exit within {timeout}; its output:{Environment.NewLine}{Output}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public async Task<string> WaitForLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var line = _lines.FirstOrDefault(predicate);
            if (line is not null) return line;
            if (_process.HasExited) break;
            await Task.Delay(50);
        }
        throw new TimeoutException($"no such line from {_process.StartInfo.FileName} within {timeout}; its output:{Environment.NewLine}{Output}");
    }

    /// <summary>Sends SIGTERM, as docker stop, Kubernetes or kill would.</summary>
    public void Terminate()
    {
        if (!_process.HasExited && kill(_process.Id, 15) != 0)
            throw new InvalidOperationException($"kill -TERM {_process.Id} failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
