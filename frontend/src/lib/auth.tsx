import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { api, ApiError, onSessionExpired, unwrap, type Schemas } from "../api/client";

type Auth = {
  user: Schemas["UserOutput"] | null;
  loading: boolean;
  /** Why the user is on the sign-in page, when it is not the first visit. */
  notice: string | null;
  signIn: (username: string, password: string) => Promise<void>;
  signOut: () => Promise<void>;
};

const AuthContext = createContext<Auth | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [notice, setNotice] = useState<string | null>(null);
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => {
      try {
        return await unwrap(api.GET("/api/auth/me"));
      } catch (error) {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return null;
        throw error;
      }
    },
    staleTime: 60_000,
  });
  const user = me.data ?? null;

  useEffect(
    () =>
      onSessionExpired(() => {
        if (client.getQueryData(["me"])) {
          setNotice("Your session has expired. Sign in again to continue.");
          client.clear();
          client.setQueryData(["me"], null);
        }
      }),
    [client],
  );

  const value: Auth = {
    user,
    loading: me.isPending,
    notice,
    async signIn(username, password) {
      const signedIn = await unwrap(api.POST("/api/auth/login", { body: { username, password } }));
      setNotice(null);
      client.setQueryData(["me"], signedIn);
    },
    async signOut() {
      await unwrap(api.POST("/api/auth/logout"));
      client.clear();
      client.setQueryData(["me"], null);
      setNotice("You are signed out.");
    },
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside AuthProvider");
  return auth;
}
