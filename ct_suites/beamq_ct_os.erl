%% Shared by the suites: free ports, and OS processes (beamq, epmd, mosquitto) that each test
%% cleans up by pid. Common Test compiles help modules of the test directory with the suites.
-module(beamq_ct_os).

-export([suite_config/2, free_ekka_offset/0, port_free/1, free_port/0, os_start/4, os_kill/1]).

%% `{beamq_bin, Bin}' from $BEAMQ_BIN and `{code_paths, Paths}' (interop/ebin, then the suite's
%% own directory) for the peers a suite starts; `{skip, _}' when BEAMQ_BIN is not set.
suite_config(Suite, Config) ->
    case os:getenv("BEAMQ_BIN") of
        false -> {skip, "BEAMQ_BIN not set"};
        Bin ->
            EpmdMod = code:which(beamq_epmd),
            true = is_list(EpmdMod),
            Paths = [filename:dirname(EpmdMod), filename:dirname(code:which(Suite))],
            [{beamq_bin, Bin}, {code_paths, Paths} | Config]
    end.

%% An ekka offset whose dist port (4370 + N) is free now, below the kernel's client ports
%% (32768..): there no connect() on the machine takes it before the node listens.
free_ekka_offset() ->
    N = 1000 + rand:uniform(27000),
    case port_free(4370 + N) of
        true -> N;
        false -> free_ekka_offset()
    end.

port_free(Port) ->
    case gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}]) of
        {ok, S} -> gen_tcp:close(S), true;
        _ -> false
    end.

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(S),
    gen_tcp:close(S),
    P.

%% Starts an OS process (stdout and stderr to Log) owned by a holder process that outlives
%% the caller; returns {Holder, OsPid}. The holder kills the OS process by pid on request, only
%% while it has not exited (so a reused pid is never hit).
os_start(Exe, Args, Env, Log) ->
    Parent = self(),
    Holder = spawn(fun() ->
                           Port = open_port({spawn_executable, "/bin/sh"},
                                            [{args, ["-c", "exec \"$0\" \"$@\" >>\"$LOGFILE\" 2>&1",
                                                     Exe | Args]},
                                             {env, [{"LOGFILE", Log} | Env]}, exit_status]),
                           {os_pid, OsPid} = erlang:port_info(Port, os_pid),
                           Parent ! {self(), OsPid},
                           holder_loop(Port, OsPid)
                   end),
    receive {Holder, OsPid} -> {Holder, OsPid} after 5000 -> exit(os_start_timeout) end.

holder_loop(Port, OsPid) ->
    receive
        {Port, {exit_status, _}} ->
            receive {kill, From} -> From ! {killed, self()} end;
        {kill, From} ->
            os:cmd("kill -9 " ++ integer_to_list(OsPid)),
            receive {Port, {exit_status, _}} -> ok after 5000 -> ok end,
            From ! {killed, self()};
        {Port, _Data} ->
            holder_loop(Port, OsPid)
    end.

os_kill({Holder, _OsPid}) ->
    Ref = erlang:monitor(process, Holder),
    Holder ! {kill, self()},
    receive
        {killed, Holder} -> erlang:demonitor(Ref, [flush]), ok;
        {'DOWN', Ref, process, Holder, _} -> ok
    after 10000 -> ok
    end.
