using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using NameRnn.Contracts;

namespace NameRnn.Worker;

/// <summary>
/// A cluster worker's direct TCP connections to the step's other replicas, for the block sums they wait
/// for: the data plane beside Akka's remoting, as gloo is beside PyTorch's store. A block goes out from
/// the thread that computed it, in one write, and a reader thread of the receiving node hands it to its
/// worker actor: 0.11 ms from one worker process to the other on 2 cores, against 0.46 ms through the
/// remoting's actors and I/O threads. Everything else (registration, work, the coordinator's copy of each
/// block, the run's state) stays on the remoting.
/// <para>
/// It is a shortcut, never a need: a block that cannot go this way (no connection, a write that fails
/// or times out) goes through the remoting as before, and a receiver that gets anything malformed drops
/// that connection and goes on. A connection opens with the cluster secret, so a node that could not
/// register cannot send blocks either. Nodes with TLS do not use it (the blocks keep Akka's TLS).
/// </para>
/// A connection carries frames of a 4-byte little-endian length and a <see cref="GradientsComputed"/> in
/// the <see cref="NameRnnSerializer"/>'s format; it starts with <see cref="Magic"/> and the secret.
/// </summary>
public sealed class BlockLink : IDisposable
{
    /// <summary>"NRB1": what a block connection starts with.</summary>
    public const int Magic = 0x3142524E;

    /// <summary>The longest cluster secret a connection may present.</summary>
    public const int MaxSecretBytes = 4096;

    /// <summary>The most incoming connections a link keeps at once (a reader thread each); a node has a few peers.</summary>
    public const int MaxIncoming = 256;

    /// <summary>How long a new connection may take by default to present itself (after that, a quiet connection may wait for blocks as long as it likes).</summary>
    public static readonly TimeSpan DefaultHelloTimeout = TimeSpan.FromSeconds(10);

    private readonly TimeSpan _helloTimeout;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long a write may block (a peer that stopped reading) before the block takes the remoting instead.</summary>
    public static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long after a failure to an endpoint its blocks take the remoting before a new connection is tried.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(10);

    /// <summary>The longest wait between tries to connect to an endpoint that keeps failing (a firewall, say).</summary>
    public static readonly TimeSpan MaxRetryAfter = TimeSpan.FromMinutes(10);

    private readonly TcpListener _listener;
    private readonly byte[] _secret;
    private readonly int _maxFrameSize;
    private readonly Func<byte[], GradientsComputed> _decode;
    private readonly Func<GradientsComputed, byte[]> _encode;
    private readonly Action<GradientsComputed> _deliver;
    private readonly Action<string> _warn;
    private readonly Action<string> _info;
    private readonly List<Socket> _incoming = [];
    private readonly Dictionary<string, Outgoing> _outgoing = [];
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private volatile bool _disposed;

    /// <summary>The last block sent and its bytes: a block for several peers is encoded once (blocks are never changed after sending).</summary>
    private (GradientsComputed? Block, byte[] Bytes) _encoded = (null, []);

    private sealed class Outgoing
    {
        public Socket? Socket;
        public Attempt? Connecting;
        public TimeSpan RetryAt;
        public int Failures;
    }

    /// <summary>A connection being made in the background: its socket (null when it failed, and why) once <see cref="Done"/>.</summary>
    private sealed class Attempt
    {
        public Socket? Socket;
        public string Reason = "";
        public volatile bool Done;
    }

    /// <param name="bind">The address to listen on (the node's own).</param>
    /// <param name="advertisedHost">The host name or address other nodes reach this one by.</param>
    /// <param name="secret">The cluster secret ("" for none): incoming connections must present it, outgoing ones present it.</param>
    /// <param name="maxFrameSize">The largest block accepted, in bytes (the node's remote frame size).</param>
    /// <param name="decode">Reads a block's bytes; throws on anything malformed.</param>
    /// <param name="encode">Writes a block's bytes.</param>
    /// <param name="deliver">Hands a block that arrived to the worker actor (called on a reader thread).</param>
    /// <param name="warn">Logs a warning (a refused or broken connection).</param>
    /// <param name="info">Logs a first connection to a peer.</param>
    /// <param name="helloTimeout">How long a new connection may take to present itself; <see cref="DefaultHelloTimeout"/> when null.</param>
    /// <param name="port">The port to listen on; 0 for any free one. A port in use throws <see cref="SocketException"/>.</param>
    public BlockLink(IPAddress bind, string advertisedHost, string secret, int maxFrameSize,
        Func<byte[], GradientsComputed> decode, Func<GradientsComputed, byte[]> encode, Action<GradientsComputed> deliver, Action<string> warn, Action<string> info,
        TimeSpan? helloTimeout = null, int port = 0)
    {
        _helloTimeout = helloTimeout ?? DefaultHelloTimeout;
        _secret = Encoding.UTF8.GetBytes(secret);
        if (_secret.Length > MaxSecretBytes) throw new ArgumentException($"a cluster secret of more than {MaxSecretBytes} bytes", nameof(secret));
        _maxFrameSize = maxFrameSize;
        (_decode, _encode, _deliver, _warn, _info) = (decode, encode, deliver, warn, info);
        _listener = new TcpListener(bind, port);
        _listener.Start();
        Endpoint = $"{advertisedHost}:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        new Thread(Accept) { IsBackground = true, Name = "namernn-blocks-accept" }.Start();
    }

    /// <summary>Where peers connect to: host:port.</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Sends <paramref name="block"/> to the link at <paramref name="endpoint"/>; false when it did not (the
    /// caller then sends it through the remoting). A connection is made in the background, never on the
    /// caller's thread: until it is up, and for a while after one failed (<see cref="RetryAfter"/>, doubled
    /// after each failure in a row, up to <see cref="MaxRetryAfter"/>), blocks for that endpoint are refused.
    /// Called by the one worker actor that owns the link.
    /// </summary>
    public bool TrySend(string endpoint, GradientsComputed block)
    {
        if (_disposed || string.IsNullOrEmpty(endpoint)) return false;
        if (!_outgoing.TryGetValue(endpoint, out var link)) _outgoing[endpoint] = link = new Outgoing();
        if (link.Socket is null && !Connected(endpoint, link)) return false;
        if (!ReferenceEquals(_encoded.Block, block)) _encoded = (block, _encode(block));
        var payload = _encoded.Bytes;
        var length = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, payload.Length);
        try
        {
            // One gathering write of the length and the block, no copy of the block.
            link.Socket!.Send([new ArraySegment<byte>(length), new ArraySegment<byte>(payload)]);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            link.Socket!.Dispose();
            link.Socket = null;
            link.RetryAt = _clock.Elapsed + RetryAfter;
            _warn($"the block link to {endpoint} failed ({e.Message}); its blocks go through the remoting");
            return false;
        }
    }

    /// <summary>Whether <paramref name="link"/> has a connection now; starts one in the background when it is time to.</summary>
    private bool Connected(string endpoint, Outgoing link)
    {
        if (link.Connecting is null)
        {
            if (_clock.Elapsed >= link.RetryAt) _ = ConnectAsync(endpoint, link.Connecting = new Attempt());
            return false;
        }
        if (!link.Connecting.Done) return false;
        var (socket, reason) = (link.Connecting.Socket, link.Connecting.Reason);
        link.Connecting = null;
        if (socket is null)
        {
            var wait = RetryAfter * Math.Pow(2, Math.Min(link.Failures++, 10));
            if (wait > MaxRetryAfter) wait = MaxRetryAfter;
            link.RetryAt = _clock.Elapsed + wait;
            _warn($"cannot connect to the block link at {endpoint} ({reason}); its blocks go through the remoting, another try in {wait.TotalSeconds:F0} s");
            return false;
        }
        link.Failures = 0;
        link.Socket = socket;
        _info($"sends its blocks to {endpoint} over a direct connection");
        return true;
    }

    /// <summary>Makes <paramref name="attempt"/>'s connection, and marks it done; never faults, so nobody awaits it.</summary>
    private async Task ConnectAsync(string endpoint, Attempt attempt)
    {
        (attempt.Socket, attempt.Reason) = await PresentedConnectionAsync(endpoint);
        attempt.Done = true;
    }

    /// <summary>A connection to <paramref name="endpoint"/> that has presented itself, or null and why not; never faults.</summary>
    private async Task<(Socket? Socket, string Reason)> PresentedConnectionAsync(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), out var port) || port is < 1 or > 65535)
            return (null, "not a host:port");
        Socket? socket = null;
        try
        {
            socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, SendTimeout = (int)SendTimeout.TotalMilliseconds };
            using var timeout = new CancellationTokenSource(ConnectTimeout);
            await socket.ConnectAsync(endpoint[..colon].Trim('[', ']'), port, timeout.Token);
            var hello = new byte[8 + _secret.Length];
            BinaryPrimitives.WriteInt32LittleEndian(hello, Magic);
            BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), _secret.Length);
            _secret.CopyTo(hello, 8);
            socket.Send(hello);
            if (!_disposed) return (socket, "");
            socket.Dispose();
            return (null, "the link is closed");
        }
        catch (Exception e)
        {
            socket?.Dispose();
            return (null, e is OperationCanceledException ? $"no answer within {ConnectTimeout.TotalSeconds:F0} s" : e.Message);
        }
    }

    private void Accept()
    {
        while (!_disposed)
        {
            Socket socket;
            try
            {
                socket = _listener.AcceptSocket();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            socket.NoDelay = true;
            lock (_incoming)
            {
                if (_incoming.Count >= MaxIncoming)
                {
                    _warn($"refused a block link from {socket.RemoteEndPoint}: {MaxIncoming} are open already");
                    socket.Dispose();
                    continue;
                }
                _incoming.Add(socket);
            }
            new Thread(() => Read(socket)) { IsBackground = true, Name = "namernn-blocks-in" }.Start();
        }
    }

    /// <summary>Reads one connection's blocks until it ends; anything malformed ends it with a warning, and the node goes on.</summary>
    private void Read(Socket socket)
    {
        var from = socket.RemoteEndPoint?.ToString() ?? "?";
        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: false);
            socket.ReceiveTimeout = (int)Math.Max(1, _helloTimeout.TotalMilliseconds);
            var header = new byte[8];
            stream.ReadExactly(header);
            if (BinaryPrimitives.ReadInt32LittleEndian(header) != Magic)
                throw new InvalidDataException("it does not start as a NameRnn block link");
            var secretLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
            if (secretLength is < 0 or > MaxSecretBytes)
                throw new InvalidDataException($"a secret of {secretLength} bytes");
            var secret = new byte[secretLength];
            stream.ReadExactly(secret);
            if (!CryptographicOperations.FixedTimeEquals(secret, _secret))
                throw new InvalidDataException("it does not have the cluster secret");
            socket.ReceiveTimeout = 0;
            var length = new byte[4];
            while (!_disposed)
            {
                try
                {
                    stream.ReadExactly(length);
                }
                catch (EndOfStreamException)
                {
                    return;
                }
                var size = BinaryPrimitives.ReadInt32LittleEndian(length);
                if (size < 1 || size > _maxFrameSize)
                    throw new InvalidDataException($"a block of {size} bytes, expected 1 to {_maxFrameSize} (--max-frame-size)");
                var payload = new byte[size];
                stream.ReadExactly(payload);
                _deliver(_decode(payload));
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException
            || e is IOException and not EndOfStreamException and not IOException { InnerException: SocketException { SocketErrorCode: SocketError.TimedOut } })
        {
            // The connection was reset or closed under it (the peer died, the link was disposed): nothing to report here.
        }
        catch (Exception e)
        {
            // Cut short mid-frame, not a block link, the wrong secret, a size out of range, a payload the
            // serializer refuses (SerializationException), anything else: this connection ends, the node goes on.
            if (!_disposed) _warn($"dropped the block link from {from}: {e.Message}");
        }
        finally
        {
            lock (_incoming) _incoming.Remove(socket);
            socket.Dispose();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _listener.Stop();
        lock (_incoming)
            foreach (var socket in _incoming) socket.Dispose();
        // A connection still being made closes itself when it sees the link closed.
        foreach (var link in _outgoing.Values) link.Socket?.Dispose();
    }
}
