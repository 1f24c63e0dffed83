%% @doc Distribution throughput benchmark (BENCHMARKS.md, scripts/bench-dist): a source on node
%% X sends N copies of a message to a sink on node Y; the time from the source's spawn to the
%% sink's `{done, Sink}' gives messages/s and MB/s. The same sink/source exist in beamq as
%% `beamq_bench:sink/2' and `beamq_bench:source/3', so every pair of node kinds is measured the
%% same way. Also: rpc:call round trips/s with 8 concurrent callers.
-module(dist_bench).
-export([main/1, sink/2, source/3, run_pair/5, rpc_rate/3]).

sink(N, ReplyTo) ->
    sink_loop(N),
    ReplyTo ! {done, self()}.

sink_loop(0) -> ok;
sink_loop(N) -> receive _ -> sink_loop(N - 1) end.

source(0, _Dest, _Msg) -> ok;
source(N, Dest, Msg) -> Dest ! Msg, source(N - 1, Dest, Msg).

mod(Node) ->
    case atom_to_list(Node) of
        "bq" ++ _ -> beamq_bench;
        _ -> ?MODULE
    end.

%% Messages/s and MB/s for N messages Msg from a source on X to a sink on Y.
run_pair(X, Y, N, Msg, Label) ->
    Sink = spawn(Y, mod(Y), sink, [N, self()]),
    T0 = erlang:monotonic_time(microsecond),
    spawn(X, mod(X), source, [N, Sink, Msg]),
    receive {done, Sink} -> ok after 300000 -> exit({timeout, Label}) end,
    Us = erlang:monotonic_time(microsecond) - T0,
    Rate = N * 1000000 / Us,
    MBs = Rate * byte_size(term_to_binary(Msg)) / 1048576,
    io:format("~-24s ~10.1f msg/s ~9.1f MB/s~n", [Label, Rate, MBs]),
    {Label, Rate, MBs}.

%% rpc:call(Target, erlang, node, []) round trips/s from Callers processes on this node.
rpc_rate(Target, Callers, Ms) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    Pids = [spawn(fun() -> Self ! {count, rpc_loop(Target, Deadline, 0)} end)
            || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {count, C} -> C end || _ <- Pids]),
    Total * 1000 / Ms.

rpc_loop(Target, Deadline, N) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true -> N;
        false -> Target = rpc:call(Target, erlang, node, []), rpc_loop(Target, Deadline, N + 1)
    end.

%% main([A, B, Q1, Q2]): A and B are BEAM nodes, Q1 and Q2 beamq nodes.
main([A, B, Q1, Q2]) ->
    [pong = net_adm:ping(N) || N <- [A, B, Q1, Q2]],
    Small = {t, <<"a/b">>, binary:copy(<<"x">>, 64)},
    Big = {t, <<"a/b">>, binary:copy(<<"y">>, 65536)},
    Pairs = [{"BEAM->BEAM", A, B}, {"BEAM->beamq", A, Q1}, {"beamq->BEAM", Q1, A},
             {"beamq->beamq", Q1, Q2}],
    [run_pair(X, Y, 200000, Small, L ++ " small") || {L, X, Y} <- Pairs],
    [run_pair(X, Y, 4000, Big, L ++ " 64KiB") || {L, X, Y} <- Pairs],
    [io:format("~-24s ~10.1f calls/s~n", ["rpc 8 callers -> " ++ L,
                                          rpc:call(A, ?MODULE, rpc_rate, [Y, 8, 5000], 60000)])
     || {L, Y} <- [{"BEAM", B}, {"beamq", Q1}]],
    ok.
