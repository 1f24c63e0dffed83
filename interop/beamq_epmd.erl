%% @doc An `-epmd_module' for stock OTP nodes that talk to beamq (or EMQX 4) nodes in ekka
%% mode, where no epmd runs: every node's distribution port follows from its name, 4370 plus
%% the integer at the end of the name part (`emqx@h' -> 4370, `emqx1@h' and `emqx-1@h' -> 4371),
%% as emqx/ekka's `ekka_dist:port/1' computes it.
%%
%% Use: `erl -start_epmd false -epmd_module beamq_epmd -pa DIR -name node7@127.0.0.1'. The
%% node itself then listens on the port of its own name (4377 here), so beamq can reach it too.
%%
%% Callbacks as in kernel's `erl_epmd' (OTP 25): start_link/0, register_node/2,3,
%% port_please/2,3, address_please/3, names/1, listen_port_please/2.
-module(beamq_epmd).

-export([start_link/0, register_node/2, register_node/3, port_please/2, port_please/3,
         address_please/3, names/0, names/1, listen_port_please/2, port/1]).

%% Distribution protocol version (OTP 23+ speak 6).
-define(DIST_VSN, 6).
-define(BASE_PORT, 4370).
-define(MAX_OFFSET, 60000).

%% No process is needed: every answer is computed from the node name.
start_link() ->
    ignore.

%% Nothing to register with; the creation is random as ekka_epmd makes it.
register_node(Name, Port) ->
    register_node(Name, Port, inet_tcp).

register_node(_Name, _Port, _Driver) ->
    {ok, rand:uniform(16#fffffff0) + 3}.

port_please(Name, Host) ->
    port_please(Name, Host, infinity).

port_please(Name, _Host, _Timeout) ->
    case port(Name) of
        0 -> noport;
        P -> {port, P, ?DIST_VSN}
    end.

%% Address and port in one step (kernel calls this first when it is exported).
address_please(Name, Host, AddressFamily) ->
    case inet:getaddr(Host, AddressFamily) of
        {ok, Ip} ->
            case port(Name) of
                0 -> {error, noport};
                P -> {ok, Ip, P, ?DIST_VSN}
            end;
        Error ->
            Error
    end.

names() ->
    names(localhost).

names(_Host) ->
    {error, address}.

%% The port this node listens on: the port of its own name.
listen_port_please(Name, _Host) ->
    {ok, port(Name)}.

%% @doc The dist port of a node name part: 4370 + its numeric suffix (mod 60000);
%% `remsh*' names never listen (0).
port(Name) when is_atom(Name) ->
    port(atom_to_list(Name));
port("remsh" ++ _) ->
    0;
port(Name) when is_list(Name) ->
    NamePart = hd(string:split(Name, "@")),
    Digits = lists:reverse(lists:takewhile(fun(C) -> C >= $0 andalso C =< $9 end,
                                           lists:reverse(NamePart))),
    Offset = case Digits of
                 [] -> 0;
                 _ -> list_to_integer(Digits) rem ?MAX_OFFSET
             end,
    ?BASE_PORT + Offset.
