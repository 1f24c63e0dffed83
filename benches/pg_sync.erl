%% @doc Route sync benchmark, the BEAM side (driven by `scripts/bench-cluster pg-sync'; the
%% beamq side is `benches/pg_sync.rs', with the same roles and output lines):
%%
%% holder(N): one process joins N groups `bench/I/#' of the pg scope `beamq_route', prints
%% `ready join_s=S rss_kb=K', waits until stdin closes.
%% joiner(Peer, N): connects to Peer, waits until its own `beamq_route' table (pg's ETS table,
%% one row per group) holds N groups, prints `result sync_s=S connect_s=C rss_delta_kb=K', waits
%% until stdin closes.
%% U in `cpu_s=U' is the CPU time the joiner used meanwhile (all schedulers).
-module(pg_sync).
-export([holder/1, joiner/2]).

group(I) ->
    <<"bench/", (integer_to_binary(I))/binary, "/#">>.

holder(N) ->
    {ok, _} = pg:start(beamq_route),
    P = spawn(fun Loop() -> receive _ -> Loop() end end),
    T0 = erlang:monotonic_time(microsecond),
    join(P, 0, N),
    io:format("ready join_s=~.3f rss_kb=~p~n", [secs(T0), rss_kb()]),
    wait_eof().

join(_, N, N) -> ok;
join(P, I, N) ->
    ok = pg:join(beamq_route, group(I), P),
    join(P, I + 1, N).

joiner(Peer, N) ->
    {ok, _} = pg:start(beamq_route),
    Rss0 = rss_kb(),
    Cpu0 = cpu_s(),
    T0 = erlang:monotonic_time(microsecond),
    true = net_kernel:connect_node(Peer),
    Connected = secs(T0),
    wait_size(N),
    Synced = secs(T0),
    io:format("result sync_s=~.3f cpu_s=~.2f connect_s=~.3f rss_delta_kb=~p~n",
              [Synced, cpu_s() - Cpu0, Connected, rss_kb() - Rss0]),
    wait_eof().

wait_size(N) ->
    case ets:info(beamq_route, size) >= N of
        true -> ok;
        false -> timer:sleep(1), wait_size(N)
    end.

secs(T0) ->
    (erlang:monotonic_time(microsecond) - T0) / 1.0e6.

%% CPU time (user + system) of the OS process, as benches/pg_sync.rs reads it: /proc/self/stat
%% fields 14 and 15, in ticks of 1/100 s.
cpu_s() ->
    {ok, B} = file:read_file("/proc/self/stat"),
    [_, After] = string:split(B, <<")">>, trailing),
    Fields = string:lexemes(After, " "),
    (binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.

rss_kb() ->
    {ok, B} = file:read_file("/proc/self/status"),
    [Line | _] = [L || L <- binary:split(B, <<"\n">>, [global]),
                       binary:longest_common_prefix([L, <<"VmRSS:">>]) =:= 6],
    [_, V | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(V).

wait_eof() ->
    case io:get_line('') of
        eof -> halt();
        {error, _} -> halt();
        _ -> wait_eof()
    end.
